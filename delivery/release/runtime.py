"""The clients a worker process shares across tasks, built from `TRIPGEN_*` settings (Prefect-free)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property

import httpx

from delivery.audit import AuditLog
from delivery.audit_blob import mirror_from_settings
from delivery.diagnose import Diagnoser
from delivery.gitops.argocd import ApplicationWaiter
from delivery.gitops.changes import GitOpsDeployments, GitOpsRouting, GitOpsWriter
from delivery.gitops.repository import ManifestsRepository
from delivery.kube import Deployments, Diagnostics, KubeConnection, Routing, connect
from delivery.kube.aks import connect_aks
from delivery.kube.configmaps import JsonConfigMaps
from delivery.kube.metrics import PodResources
from delivery.metrics.prometheus import PrometheusClient
from delivery.metrics.pushgateway import ReleaseMetrics
from delivery.migrations.release import ReleaseMigrations, database_dsn
from delivery.notify import Credentials, build_dispatcher, escalation_levels, load_credentials
from delivery.notify.alert_log import AlertLog
from delivery.notify.dispatch import Dispatcher
from delivery.notify.http import TIMEOUT_SECONDS
from delivery.notify.pagerduty import PagerDutyIncidents
from delivery.policy.models import Policy
from delivery.release.bluegreen import BlueGreen
from delivery.release.canary import CanaryRollout
from delivery.release.probes import Prober
from delivery.release.record import ReleaseRecords
from delivery.release.restore import Restorer
from delivery.reports.source import ReportSource, report_source
from delivery.settings import Settings


@dataclass
class Runtime:
    """Policy, cluster, HTTP and metrics clients of this worker."""

    settings: Settings

    @cached_property
    def policy(self) -> Policy:
        return self.settings.load_policy()

    @cached_property
    def kube(self) -> KubeConnection:
        """TRIPGEN_KUBECONFIG when set, else the policy's AKS cluster (the DR region's own, in a DR region), else the
        in-cluster service account."""
        region = next((r for r in self.policy.regions if r.name == self.settings.region), None)
        azure = region.cluster.azure if region else self.policy.cluster.azure
        if azure and not self.settings.kubeconfig:
            return connect_aks(azure)
        return connect(self.settings.kubeconfig, self.settings.kube_context)

    @cached_property
    def deployments(self) -> Deployments:
        """Production writes as commits in gitops mode (delivery.mode), else straight to the API."""
        return GitOpsDeployments(self.kube, self.gitops, self.production) if self.gitops else Deployments(self.kube)

    @cached_property
    def routing(self) -> Routing:
        return GitOpsRouting(self.kube, self.gitops, self.production) if self.gitops else Routing(self.kube)

    @cached_property
    def production(self) -> str:
        return self.policy.environments["production"].namespace

    @cached_property
    def gitops(self) -> GitOpsWriter | None:
        """The writer that commits production changes to the manifests repository, when the policy says gitops."""
        delivery = self.policy.delivery
        if delivery.mode != "gitops":
            return None
        token = self.settings.git_token.get_secret_value() if self.settings.git_token else None
        workdir = self.settings.gitops_workdir / delivery.application
        repo = ManifestsRepository(delivery.repository, delivery.branch, workdir, token)
        waiter = ApplicationWaiter(self.kube, delivery.application_namespace, delivery.application,
                                   delivery.sync_timeout.total_seconds())
        return GitOpsWriter(repo, delivery.path, waiter)

    @cached_property
    def diagnostics(self) -> Diagnostics:
        return Diagnostics(self.kube)

    @cached_property
    def blue_green(self) -> BlueGreen:
        return BlueGreen(self.policy, self.deployments, self.routing)

    @cached_property
    def canary(self) -> CanaryRollout:
        return CanaryRollout(self.policy, self.deployments, self.routing, self.diagnostics)

    @cached_property
    def records(self) -> ReleaseRecords:
        """The durable release records, as ConfigMaps in the production namespace."""
        return ReleaseRecords(JsonConfigMaps(self.kube, self.policy.environments["production"].namespace))

    @cached_property
    def restorer(self) -> Restorer:
        timeout = self.policy.validation.rollout_timeout.total_seconds()
        logs = self.settings.audit_log.parent / "canary-logs"
        return Restorer(self.records, self.blue_green, self.canary, self.deployments, timeout,
                        keep_canary_logs=lambda tag, service: self.canary.archive(service, tag, logs),
                        revert_migrations=self.migrations.revert)

    @cached_property
    def migrations(self) -> ReleaseMigrations:
        """The tags' migrations (under the reports root) on the production database."""
        return ReleaseMigrations(self.policy.quality_gates.database_migrations, self.reports, log=MIGRATION_LOG.info)

    @cached_property
    def reports(self) -> ReportSource:
        """The CI reports and migrations: TRIPGEN_REPORTS, a directory or a blob container."""
        return report_source(self.settings.reports, self.settings.reports_blob_connection_string)

    @cached_property
    def http(self) -> httpx.Client:
        return httpx.Client(timeout=self.policy.blue_green.max_response_time.total_seconds(), follow_redirects=False)

    @cached_property
    def prober(self) -> Prober:
        return Prober(self.http, self.settings.gateway_url)

    @cached_property
    def diagnoser(self) -> Diagnoser:
        """The emergency procedure's look at services (delivery/diagnose.py)."""
        gate = self.policy.quality_gates.database_migrations
        return Diagnoser(self.diagnostics, PodResources(self.kube), self.http, self.settings.gateway_url,
                         lambda: database_dsn(gate))

    @cached_property
    def prometheus(self) -> PrometheusClient:
        p = self.policy.prometheus
        return PrometheusClient(self.settings.prometheus(self.policy), timeout=p.timeout.total_seconds(), retries=p.retries)

    @cached_property
    def metrics(self) -> ReleaseMetrics | None:
        """The release metrics' Pushgateway, when TRIPGEN_PUSHGATEWAY_URL is set."""
        url = self.settings.pushgateway_url
        return ReleaseMetrics(url, [s.name for s in self.policy.services]) if url else None

    @cached_property
    def dispatcher(self) -> Dispatcher:
        """Notifications (holds credentials: never a parameter, never returned from a task)."""
        return build_dispatcher(self.policy, credentials=self.credentials, alert_log=self.alert_log)

    @cached_property
    def credentials(self) -> Credentials:
        return load_credentials(escalation_levels(self.policy))

    @cached_property
    def alert_log(self) -> AlertLog:
        """The alerts raised and their escalations, read by the scheduled escalation check."""
        return AlertLog(self.settings.alerts_log_path())

    @cached_property
    def incidents(self) -> PagerDutyIncidents | None:
        """PagerDuty's incident status (REST API v2), when TRIPGEN_PAGERDUTY_API_TOKEN is set."""
        token = self.credentials.pagerduty_api_token
        return PagerDutyIncidents(token, httpx.Client(timeout=TIMEOUT_SECONDS)) if token else None

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.settings.audit_log, mirror=mirror_from_settings(self.settings, self.policy))


_RUNTIMES: dict[str, Runtime] = {}
MIGRATION_LOG = logging.getLogger("tripgen.migrations")
REGION: ContextVar[str | None] = ContextVar("tripgen_region", default=None)
"""The DR region the current steps act on (None: the primary); Prefect's task runner copies it into task threads."""


@contextmanager
def in_region(name: str | None) -> Iterator[None]:
    """Every runtime() inside reaches the DR region `name` (None: the primary region)."""
    token = REGION.set(name)
    try:
        yield
    finally:
        REGION.reset(token)


def region_details() -> dict[str, str]:
    """{"region": name} inside a DR region (for audit records), else {}."""
    return {"region": name} if (name := REGION.get()) else {}


def runtime() -> Runtime:
    """The runtime for the current `TRIPGEN_*` settings (in the current region), built once per distinct settings."""
    settings = Settings()
    if region := REGION.get():
        settings = settings.for_region(region)
    key = settings.model_dump_json()
    if key not in _RUNTIMES:
        _RUNTIMES[key] = Runtime(settings)
    return _RUNTIMES[key]
