"""Where a flow run finds its world: policy, cluster, registry, Prometheus, reports, audit log.

Read from `TRIPGEN_*` environment variables of the worker (never flow parameters, so credentials
never show in the UI); `tripgen-release demo` sets them for the sandbox.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from delivery.policy.loader import load_policy
from delivery.policy.models import Policy


class RegionEndpoints(BaseModel):
    """Where a DR region's cluster and services are, for a worker that reaches them directly (the sandbox, a kubeconfig)."""

    kubeconfig: str | None = None
    kube_context: str | None = None
    gateway_url: str | None = None
    prometheus_url: str | None = None


class Settings(BaseSettings):
    """The environment of a release worker."""

    model_config = SettingsConfigDict(env_prefix="TRIPGEN_", extra="ignore")

    policy: Path = Path("policies/tripgen.yaml")
    kubeconfig: str | None = None  # None: the policy's AKS cluster (cluster.azure), else in-cluster config
    kube_context: str | None = None
    registry_url: str | None = None  # None: https://<policy.registry>
    prometheus_url: str | None = None  # None: the policy's prometheus.url
    pushgateway_url: str | None = None  # set: the flows push the release metrics there (docs/kpi-metrics.md)
    gateway_url: str = "https://api.tripgen.com"
    public_host: str = "api.tripgen.com"
    staging_host: str = "staging-api.tripgen.com"
    reports: Path | str = Path(".")  # a directory, or an Azure Blob container URL (delivery/reports/source.py)
    reports_blob_connection_string: SecretStr | None = None  # a container's connection string or SAS (None: DefaultAzureCredential)
    run_trivy: bool = True  # scan with the trivy binary when installed; False reads the reports
    audit_log: Path = Path("audit/audit.jsonl")
    audit_blob_connection_string: SecretStr | None = None  # set: every audit record is also appended to Azure Blob (delivery/audit_blob.py)
    audit_blob_container: str = "tripgen-audit"
    audit_blob_account_id: str | None = None  # the storage account's ARM id: the container's retention policy is set there
    alerts_log: Path | None = None  # the alerts raised, for the escalation check (None: alerts.jsonl beside the audit log)
    prefect_ui_url: str | None = None
    approval_code_key: SecretStr | None = None  # signs the approvers' personal codes (delivery/approval_codes.py)
    release_lock: str = "production-release"  # the global concurrency limit one production release holds
    heartbeat_seconds: int = Field(default=30, ge=30)  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY of release runs (Prefect's minimum)
    zombie_after_seconds: float = Field(default=90, gt=30)  # no heartbeat this long: the run's worker or node is gone
    release_lock_lease_seconds: float = Field(default=60, ge=60)  # a dead holder's slot frees this long after its last renewal (Prefect's minimum)
    git_token: SecretStr | None = None  # gitops: the manifests repository's token (an HTTP header, never in a URL)
    gitops_workdir: Path = Path(".gitops")  # gitops: where the worker keeps its clone of the manifests repository
    release_lock_check_seconds: float = Field(default=10, gt=0)
    region: str | None = None  # set by for_region: the DR region these settings reach (None: the primary)
    region_endpoints: dict[str, RegionEndpoints] = {}  # TRIPGEN_REGION_ENDPOINTS, JSON: {"korea-south": {"kubeconfig": ...}}  # how often a release renews its lock's lease and checks it still holds it

    @field_validator("reports", mode="before")
    @classmethod
    def _directory_or_url(cls, value: object) -> object:
        """An http(s) URL stays a string (a Path would fold its `//`); anything else is a directory."""
        return value if isinstance(value, str) and value.startswith(("http://", "https://")) else Path(value)

    def for_region(self, name: str) -> Settings:
        """These settings pointed at the DR region `name`: its TRIPGEN_REGION_ENDPOINTS entry replaces the cluster,
        gateway and Prometheus (without an entry, the policy's region cluster is used)."""
        endpoints = self.region_endpoints.get(name, RegionEndpoints())
        return self.model_copy(update={"region": name, **endpoints.model_dump(exclude_none=True),
                                       **({} if endpoints.kubeconfig else {"kubeconfig": None, "kube_context": None})})

    def load_policy(self) -> Policy:
        return load_policy(self.policy)

    def diagnostics_dir(self) -> Path:
        """Where diagnosis bundles are kept (30 days): beside the audit log."""
        return self.audit_log.parent / "diagnostics"

    def alerts_log_path(self) -> Path:
        return self.alerts_log or self.audit_log.with_name("alerts.jsonl")

    def registry_api(self, policy: Policy) -> str:
        return self.registry_url or f"https://{policy.registry}"

    def prometheus(self, policy: Policy) -> str:
        return self.prometheus_url or policy.prometheus.url
