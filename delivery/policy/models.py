"""The release policy as pydantic models: every number of SPEC.md, with SPEC values as defaults."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from delivery.policy.default_queries import DEFAULT_QUERIES
from delivery.units import Duration, parse_duration


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
def _percent(value: float) -> float:
    if not 0 <= value <= 100:
        raise ValueError(f"must be between 0 and 100, got {value:g}")
    return value


Percent = Annotated[float, AfterValidator(_percent)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


def _d(text: str) -> timedelta:
    return parse_duration(text)


class Strict(BaseModel):
    """Base of every policy section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- cluster (SPEC §1) ------------------------------------------------------------------


def _azure_name(pattern: str, rule: str) -> AfterValidator:
    """A validator that the whole value matches `pattern`; the error says `rule`."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"'{value}' is not {rule}")
        return value

    return AfterValidator(check)


SubscriptionId = Annotated[str, _azure_name(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}",
                                            "a subscription id (a GUID: `az account show --query id`)")]
ResourceGroup = Annotated[str, _azure_name(r"[-\w.()]{0,89}[-\w()]",
                                           "a resource group name (1-90 letters, digits, - _ . ( ), not ending in .)")]
AksName = Annotated[str, _azure_name(r"[a-zA-Z0-9]([-_a-zA-Z0-9]{0,61}[a-zA-Z0-9])?",
                                     "an AKS cluster name (1-63 letters, digits, - _, starting and ending alphanumeric)")]


class AzureCluster(Strict):
    """An AKS cluster in Azure Resource Manager; releases get its kubeconfig from ARM, not from a file."""

    subscription_id: SubscriptionId
    resource_group: ResourceGroup = "rg-tripgen-prod"
    name: AksName = "aks-tripgen-prod"

    @property
    def label(self) -> str:
        return f"AKS cluster '{self.name}' (resource group '{self.resource_group}', subscription '{self.subscription_id}')"


class Cluster(Strict):
    """Where releases run: `azure` names an AKS cluster; None means TRIPGEN_KUBECONFIG or in-cluster config."""

    azure: AzureCluster | None = None


RegionName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="e.g. korea-central")]


class Region(Strict):
    """One region's cluster (R-DR-1): the primary is `cluster` above (or TRIPGEN_KUBECONFIG); a DR region's is its
    own `cluster`, or the worker's TRIPGEN_REGION_ENDPOINTS entry of its name (kubeconfig, gateway, Prometheus)."""

    name: RegionName
    role: Literal["primary", "dr"]
    cluster: Cluster = Cluster()


# --- services (SPEC §1, R-BG-5) -------------------------------------------------------


class ResourceAmounts(Strict):
    cpu: str
    memory: str


class Resources(Strict):
    requests: ResourceAmounts = ResourceAmounts(cpu="500m", memory="1Gi")
    limits: ResourceAmounts = ResourceAmounts(cpu="2000m", memory="2Gi")


class Service(Strict):
    """One TripGen service: its image, port, health endpoints and production shape."""

    name: Name
    image_repository: str = Field(default="", description="defaults to the service name")
    public_path: str = Field(pattern=r"^/")
    smoke_path: str = Field(default="", pattern=r"^(/.*)?$", description="an API path the smoke suite GETs; default public_path")
    port: int = Field(default=8080, ge=1, le=65535)
    health_path: str = Field(default="/actuator/health", pattern=r"^/")
    db_health_path: str = Field(default="/actuator/health/db", pattern=r"^/")
    replicas: int = Field(default=3, ge=1)
    resources: Resources = Resources()
    env: dict[str, str] = {"SPRING_PROFILES_ACTIVE": "production"}

    @property
    def repository(self) -> str:
        return self.image_repository or self.name

    @property
    def smoke_target(self) -> str:
        return self.smoke_path or self.public_path


# --- environments and order (R-ENV, R-PAR) --------------------------------------------


class Environment(Strict):
    namespace: Name
    strategy: Literal["rolling", "blue-green", "canary"]
    approval: Literal["automatic", "manual"]
    watch: Duration
    auto_rollback: bool = True


def _default_environments() -> dict[str, Environment]:
    return {
        "staging": Environment(namespace="staging", strategy="rolling", approval="automatic", watch=_d("10m")),
        "production": Environment(namespace="production", strategy="blue-green", approval="manual", watch=_d("30m")),
        "canary": Environment(namespace="production", strategy="canary", approval="automatic", watch=_d("15m")),
    }


class DeploymentGroup(Strict):
    name: Name
    services: list[str] = Field(min_length=1)


class DeploymentOrder(Strict):
    """R-PAR: migrations first, then groups in order, at most `max_concurrent` at once."""

    migrations_first: Literal[True] = Field(default=True, description="expand always runs before any service deploys "
                                            "(an app deployed before its expand would find its columns missing)")
    max_concurrent: int = Field(default=2, ge=1)
    limit_per_deployment: ResourceAmounts = ResourceAmounts(cpu="4", memory="8Gi")
    groups: list[DeploymentGroup] = [
        DeploymentGroup(name="independent", services=["user-service", "location-service"]),
        DeploymentGroup(name="trips", services=["trip-service"]),
        DeploymentGroup(name="ai", services=["ai-service"]),
    ]


# --- quality gates (R-GATE, R-SEC-1) --------------------------------------------------

OnFailure = Literal["stop", "security-review", "performance-review", "warn"]


class Gate(Strict):
    required: bool = True
    on_failure: OnFailure = "stop"
    report: str = Field(default="", description="path or URL template; {tag} and {service} are filled in")


class UnitTestGate(Gate):
    min_coverage_percent: Percent = 80
    report: str = "reports/{tag}/coverage.xml"


class IntegrationTestGate(Gate):
    min_pass_percent: Percent = 100
    report: str = "reports/{tag}/integration-tests.xml"


class SecurityScanGate(Gate):
    on_failure: OnFailure = "security-review"
    max_critical: int = Field(default=0, ge=0)
    max_high: int | None = Field(default=None, ge=0, description="None: HIGH findings are reported, not gating")
    report: str = "reports/{tag}/trivy-{service}.json"


class PerformanceGate(Gate):
    on_failure: OnFailure = "performance-review"
    max_deviation_percent: Percent = 10
    report: str = "reports/{tag}/k6-summary.json"
    baseline: str = "reports/baseline/k6-summary.json"


class CodeQualityGate(Gate):
    required: bool = False
    on_failure: OnFailure = "warn"
    min_grade: Literal["A", "B", "C", "D", "E"] = "A"
    sonarqube_url: str = "https://sonarqube.tripgen.com"
    project_key: str = "tripgen"


class DatabaseMigrationsGate(Gate):
    """R-DB-3 before anything changes: squawk on every file, then the chain on throwaway copies of the schema."""

    report: str = "migrations/{tag}"  # the tag's migrations directory, under the reports root like the reports
    dsn_env: str = Field(default="TRIPGEN_DATABASE_URL", pattern=r"^[A-Z_][A-Z0-9_]*$")
    dsn_secret_block: str | None = "tripgen-database-url"  # a Prefect Secret block, when the variable is unset
    pg_version: str = Field(default="15", pattern=r"^\d+(\.\d+)?$")
    lock_timeout: PositiveDuration = _d("5s")
    statement_timeout: PositiveDuration = _d("15m")
    batch_size: int = Field(default=1000, ge=1)
    contract: Literal["after_retire", "next_release"] = Field(
        default="after_retire", description="when a tag's contract runs: once its release retired the old colors, or at "
                                            "the start of the next release (before that one's expand)")


class QualityGates(Strict):
    unit_tests: UnitTestGate = UnitTestGate()
    integration_tests: IntegrationTestGate = IntegrationTestGate()
    security_scan: SecurityScanGate = SecurityScanGate()
    performance: PerformanceGate = PerformanceGate()
    code_quality: CodeQualityGate = CodeQualityGate()
    database_migrations: DatabaseMigrationsGate = DatabaseMigrationsGate()


# --- validation, blue-green, watch (R-VAL, R-BG, R-MON, R-INC) ------------------------


class Validation(Strict):
    rollout_timeout: PositiveDuration = _d("300s")
    health_attempts: int = Field(default=5, ge=1)
    health_retry_interval: Duration = _d("10s")
    response_time_path: str = Field(default="/api/trips", pattern=r"^/")
    max_response_time: PositiveDuration = _d("2s")
    db_health_service: str = "trip-service"


class StagingChecks(Strict):
    """R-GHA deploy-staging: E2E and load commands (argument lists, run without a shell), or the built-in smoke suite."""

    e2e_command: list[str] = []
    performance_command: list[str] = []
    command_timeout: PositiveDuration = _d("15m")


class BlueGreen(Strict):
    ready_timeout: PositiveDuration = _d("300s")
    validation_host: str = "validation.tripgen.com"
    max_error_rate_percent: Percent = 0.5
    max_response_time: PositiveDuration = _d("10s")
    old_color_grace: Duration = _d("5m")
    notify: list[Literal["teams", "pagerduty", "slack"]] = ["teams", "pagerduty"]


class Rollback(Strict):
    """R-RB: how a manual rollback waits for the target version before switching to it."""

    ready_timeout: PositiveDuration = _d("120s")


class Watch(Strict):
    """R-MON: how the post-switch watch reads metrics and what it does about them.

    The 5xx rate counts as above a threshold when it is, at `confidence_percent`, above it
    (the Wilson interval's lower bound): one stray error in a hundred requests is not 1%.
    """

    interval: PositiveDuration = _d("60s")
    query_window: PositiveDuration = _d("5m")
    alert_error_rate_percent: Percent = 1
    emergency_rollback_error_rate_percent: Percent = 5
    request_count_metric: str = "requests-total"
    error_count_metric: str = "requests-5xx"
    response_time_metric: str = "response-time-p95"
    confidence_percent: float = Field(default=95, gt=50, lt=100)
    tolerated_failed_checks: int = Field(default=0, ge=0)


# --- canary (R-CAN) -------------------------------------------------------------------


class CanaryStage(Strict):
    weight: Percent
    observe: PositiveDuration
    max_error_rate_percent: Percent = 0.1
    pause_before: bool = False


class AnalysisMetric(Strict):
    """A Flagger-style check: a template evaluated every interval against min and/or max."""

    name: Name
    template: str
    interval: PositiveDuration = _d("1m")
    min: float | None = None
    max: float | None = None
    dry_run: bool = False


class Analysis(Strict):
    """R-CAN-3, Flagger's model: step up to maxWeight, roll back after `threshold` failed checks."""

    interval: PositiveDuration = _d("1m")
    threshold: int = Field(default=5, ge=1)
    max_weight: Percent = 50
    step_weight: Percent = 10
    progress_deadline: PositiveDuration = _d("60s")
    metrics: list[AnalysisMetric] = [
        AnalysisMetric(name="request-success-rate", template="request-success-rate", min=99),
        AnalysisMetric(name="request-duration", template="request-duration", max=500),
    ]


def _default_stages() -> list[CanaryStage]:
    return [
        CanaryStage(weight=5, observe=_d("10m")),
        CanaryStage(weight=25, observe=_d("15m")),
        CanaryStage(weight=50, observe=_d("20m")),
        CanaryStage(weight=100, observe=_d("30m")),
    ]


class StatisticalJudgeSettings(Strict):
    """The statistical judge (docs/judges.md): canary against stable, false rollbacks at most `false_rollback_percent`."""

    false_rollback_percent: float = Field(default=1, gt=0, lt=100, description="over a whole canary, any length")
    latency_share_percent: float = Field(default=5, gt=0, lt=100, description="of that budget for latency; the rest for 5xx")
    look_shares_percent: list[Annotated[float, Field(gt=0)]] = Field(
        default=[5, 85], min_length=1, description="of each test's budget for looks 1, 2, ...; the rest spread over all later looks"
    )
    min_error_rate_increase_points: float = Field(default=0.1, ge=0, description="smaller 5xx-rate increases never roll back")
    min_latency_increase_percent: float = Field(default=5, ge=0, description="smaller mean-latency increases never roll back")
    min_requests: int = Field(default=100, ge=1, description="per side and interval; fewer is inconclusive")

    @field_validator("look_shares_percent")
    @classmethod
    def _leaves_some_for_later_looks(cls, shares: list[float]) -> list[float]:
        if sum(shares) >= 100:
            raise ValueError(f"the shares add up to {sum(shares):g}%: keep them under 100 so that later looks can still roll back")
        return shares


class Canary(Strict):
    progression: Literal["stages", "analysis"] = "stages"
    header_name: str = "canary"
    header_value: str = "true"
    stages: list[CanaryStage] = Field(default_factory=_default_stages, min_length=1)
    analysis: Analysis = Analysis()
    judge: Literal["threshold", "statistical"] = "threshold"
    statistical: StatisticalJudgeSettings = StatisticalJudgeSettings()
    on_inconclusive: Literal["fail", "pause"] = "fail"
    abort_error_rate_percent: Percent = 1
    log_retention: PositiveDuration = _d("30d")
    notify: list[Literal["slack", "teams", "pagerduty"]] = ["slack"]


# --- approvals and sync window (R-SEC-3, R-RB, R-GITOPS-2) ----------------------------


class ApprovalRule(Strict):
    approvers: int = Field(ge=1)
    groups: list[str] = Field(min_length=1)


class HotfixRule(ApprovalRule):
    auto_approve_security_patch: bool = True
    auto_approve_critical_severity: bool = True


SlackUserId = Annotated[str, _azure_name(r"[UW][A-Z0-9]{6,}", "a Slack user id (U024BE7LH: profile, more, Copy member ID)")]


class ApproverChannel(Strict):
    """Where one approver receives personal approval codes: an e-mail address or a Slack user id (a DM), not both."""

    email: EmailAddress | None = None  # EmailAddress is defined below, beside compliance.report_recipients
    slack: SlackUserId | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ApproverChannel:
        if (self.email is None) == (self.slack is None):
            raise ValueError("needs exactly one channel: email (an address) or slack (a user id)")
        return self


class Approvals(Strict):
    groups: dict[str, list[str]] = {
        "developers": ["dev.kim", "dev.park"],
        "tech-leads": ["lead.choi", "lead.jung"],
        "devops-team": ["ops.lee", "ops.kang"],
        "security-team": ["sec.yoon"],
    }
    staging: ApprovalRule = ApprovalRule(approvers=1, groups=["developers"])
    production: ApprovalRule = ApprovalRule(approvers=2, groups=["tech-leads", "devops-team"])
    emergency_override: ApprovalRule = ApprovalRule(approvers=1, groups=["security-team"])
    hotfix: HotfixRule = HotfixRule(approvers=1, groups=["tech-leads"])
    rollback: ApprovalRule = ApprovalRule(approvers=1, groups=["devops-team", "tech-leads"])
    initiator_may_approve: bool = False
    commit_author_may_approve: bool = False  # the author of the tag's commit, when the trigger passes it
    approver_channels: dict[str, ApproverChannel] = {}  # SPEC names no addresses: each file lists its own
    timeout: PositiveDuration = _d("24h")
    code_lifetime: PositiveDuration = Field(default=_d("24h"), description="a personal code expires this long after it "
                                            "is sent, or with its round if sooner; a round still open gets new codes")
    poll_interval: PositiveDuration = _d("10s")


class SyncWindow(Strict):
    """R-GITOPS-2: production changes start only when a window opened by `schedule` is still open."""

    kind: Literal["allow"] = "allow"
    schedule: str = "0 2 * * 1-5"
    duration: PositiveDuration = _d("2h")
    timezone: str = "Asia/Seoul"
    applications: list[str] = ["tripgen-prod"]


class Delivery(Strict):
    """How production changes reach the cluster (R-GITOPS): `direct` API calls, or `gitops` commits ArgoCD syncs."""

    mode: Literal["direct", "gitops"] = "direct"
    repository: str | None = None  # the manifests repository's URL (a local path in the sandbox)
    branch: str = "main"
    path: str = "environments/production"
    application: str = "tripgen-prod"
    application_namespace: str = "argocd-system"
    sync_timeout: PositiveDuration = _d("5m")  # per commit, not counting time behind a closed ArgoCD sync window

    @model_validator(mode="after")
    def _gitops_names_its_repository(self) -> Delivery:
        if self.mode == "gitops" and not self.repository:
            raise ValueError("delivery.mode gitops needs delivery.repository (the manifests repository's URL)")
        return self


# --- alerting and KPIs (R-ALERT, R-KPI) -----------------------------------------------

Channel = Literal["pagerduty", "sms", "slack", "email", "teams"]


class AlertRoute(Strict):
    channels: list[Channel] = Field(min_length=1)
    response_time: Duration
    escalate_after: PositiveDuration
    escalate_to: str


def _default_routes() -> dict[str, AlertRoute]:
    return {
        "critical": AlertRoute(channels=["pagerduty", "sms"], response_time=_d("0s"), escalate_after=_d("5m"), escalate_to="team-lead"),
        "high": AlertRoute(channels=["slack", "email"], response_time=_d("5m"), escalate_after=_d("15m"), escalate_to="next-level"),
        "medium": AlertRoute(channels=["slack"], response_time=_d("15m"), escalate_after=_d("1h"), escalate_to="manager"),
        "low": AlertRoute(channels=["email"], response_time=_d("1h"), escalate_after=_d("24h"), escalate_to="weekly-report"),
    }


class KpiTargets(Strict):
    deployments_per_week: float = Field(default=1, ge=0)
    success_rate_percent: Percent = 98
    mean_deployment_time: PositiveDuration = _d("20m")
    max_rollback_rate_percent: Percent = 5
    mttr: PositiveDuration = _d("15m")


class Kpi(Strict):
    """R-KPI alert thresholds and targets."""

    min_deployment_success_rate_percent: Percent = 95
    max_rollbacks_per_day: int = Field(default=2, ge=0)
    max_deployment_duration: PositiveDuration = _d("30m")
    max_canary_error_rate_percent: Percent = 0.5
    max_blue_green_switch_time: PositiveDuration = _d("5m")
    targets: KpiTargets = KpiTargets()


# --- metrics ----------------------------------------------------------------------------


class MetricTemplate(Strict):
    """A PromQL query with `{{ namespace }}`, `{{ service }}`, `{{ target }}`, `{{ version }}`, `{{ interval }}`."""

    query: str = Field(min_length=1)
    unit: Literal["percent", "ms", "seconds", "count", "ratio"]


def _default_templates() -> dict[str, MetricTemplate]:
    return {name: MetricTemplate(query=query, unit=unit) for name, (query, unit) in DEFAULT_QUERIES.items()}


class Prometheus(Strict):
    url: str = Field(default="http://prometheus.istio-system:9090", pattern=r"^https?://")
    timeout: PositiveDuration = _d("10s")
    retries: int = Field(default=3, ge=0)


EmailAddress = Annotated[str, _azure_name(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+", "an e-mail address (name@domain)")]


class Compliance(Strict):
    """R-AUDIT: how long the audit log is kept, and who gets the monthly compliance report (flows/compliance_report.py)."""

    audit_retention: PositiveDuration = _d("2557d")
    secret_rotation: PositiveDuration = _d("90d")
    report_recipients: list[EmailAddress] = Field(default=["compliance@tripgen.com", "audit@tripgen.com"], min_length=1)


class DisasterRecovery(Strict):
    """R-DR-1, R-DR-2: the recovery objectives and the database failover bound the DR drill is judged by."""

    rto: PositiveDuration = Field(default=_d("30m"), description="failure -> the DR side serving healthy responses")
    rpo: PositiveDuration = Field(default=_d("15m"), description="the last write committed before the failure -> the DR copy")
    database_failover: PositiveDuration = Field(default=_d("60s"), description="primary lost -> the standby accepts writes")


# --- the whole policy -------------------------------------------------------------------


def _default_services() -> list[Service]:
    return [
        Service(name="user-service", public_path="/api/users"),
        Service(name="trip-service", public_path="/api/trips"),
        Service(name="ai-service", public_path="/api/ai", smoke_path="/api/ai/itineraries"),
        Service(name="location-service", public_path="/api/locations"),
    ]


class Policy(Strict):
    """Everything a release, a rollback and the watch decide by."""

    registry: str = "acrtrpgenprod.azurecr.io"
    cluster: Cluster = Cluster()
    prometheus: Prometheus = Prometheus()
    services: list[Service] = Field(default_factory=_default_services, min_length=1)
    environments: dict[str, Environment] = Field(default_factory=_default_environments)
    deployment_order: DeploymentOrder = DeploymentOrder()
    quality_gates: QualityGates = QualityGates()
    validation: Validation = Validation()
    staging_checks: StagingChecks = StagingChecks()
    blue_green: BlueGreen = BlueGreen()
    watch: Watch = Watch()
    rollback: Rollback = Rollback()
    canary: Canary = Canary()
    approvals: Approvals = Approvals()
    sync_window: SyncWindow = SyncWindow()
    delivery: Delivery = Delivery()
    alerting: dict[Literal["critical", "high", "medium", "low"], AlertRoute] = Field(default_factory=_default_routes)
    kpi: Kpi = Kpi()
    compliance: Compliance = Compliance()
    disaster_recovery: DisasterRecovery = DisasterRecovery()
    regions: list[Region] = Field(default_factory=list, description="none: one region; else one primary, then DR regions")
    metric_templates: dict[str, MetricTemplate] = Field(default_factory=_default_templates)

    @field_validator("regions")
    @classmethod
    def _one_primary(cls, regions: list[Region]) -> list[Region]:
        """A release reaches the primary first, then each DR region: exactly one primary, names unique."""
        if regions and [r.role for r in regions].count("primary") != 1:
            raise ValueError("name exactly one region with role: primary (the DR regions follow it)")
        if len({r.name for r in regions}) != len(regions):
            raise ValueError("region names must be unique")
        return regions

    def dr_regions(self) -> list[Region]:
        """The regions a release reaches after the primary's watch passed, in the policy's order."""
        return [region for region in self.regions if region.role == "dr"]

    @field_validator("metric_templates", mode="before")
    @classmethod
    def _keep_shipped_templates(cls, value: object) -> object:
        """Templates written in the file add to the shipped ones, or replace them by name."""
        return {**_default_templates(), **value} if isinstance(value, dict) else value

    def service(self, name: str) -> Service:
        """The service called `name`; KeyError names the known ones."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(f"unknown service '{name}' (known: {', '.join(s.name for s in self.services)})")

    def environment(self, name: str) -> Environment:
        return self.environments[name]
