"""The sandbox's ArgoCD controller against a real local git repository (a bare remote and a working
clone committing a kustomize tree): sync and status, new commits, ignoreDifferences, self-heal, prune,
manual operations, sync windows on an injected clock, comparison errors, and kubectl listing them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from delivery.sandbox.argocd import AdjustableClock, ArgoCDSettings
from delivery.sandbox.argocd_health import deployment_health
from delivery.sandbox.argocd_repo import SourceError
from delivery.sandbox.argocd_sync import jq_path, json_pointer, keep_live, three_way
from delivery.sandbox.argocd_windows import ProjectWindow, blocking
from delivery.sandbox.resources import parse_timestamp
from tests.conftest import REPO
from tests.sandbox.cluster_fixture import RunningCluster, running_cluster, wait_until

ARGOCD_NS = "argocd-system"
DEST_NS = "production"
APP = "trip-service"
IMAGE = "acrtrpgenprod.azurecr.io/trip-service"
POLL_SECONDS = 0.1
SCHEMAS = REPO.parent / "shared" / "schemas" / "crds" / "argoproj.io"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "TripGen CI", "GIT_AUTHOR_EMAIL": "ci@tripgen.example",
                "GIT_COMMITTER_NAME": "TripGen CI", "GIT_COMMITTER_EMAIL": "ci@tripgen.example"}
KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                 "resources": ["deployment.yaml", "service.yaml"]}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "labels": {"app": APP}},
           "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
UTC = timezone.utc


def deployment(version: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP, "labels": {"app": APP}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP}},
                     "template": {"metadata": {"labels": {"app": APP}},
                                  "spec": {"containers": [{"name": APP, "image": f"{IMAGE}:{version}",
                                                           "ports": [{"containerPort": 8080}]}]}}}}


class GitRepo:
    """A bare repository (what repoURL names) and a working clone that commits and pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare, self.work = root / "deploy.git", root / "work"
        self._git("init", "--quiet", "--bare", str(self.bare))
        self._git("clone", "--quiet", str(self.bare), str(self.work))
        self._git("-C", str(self.work), "symbolic-ref", "HEAD", "refs/heads/main")
        self._git("-C", str(self.bare), "symbolic-ref", "HEAD", "refs/heads/main")

    def _git(self, *args: str) -> str:
        environment = {**os.environ, **GIT_IDENTITY, "HOME": str(self.bare.parent)}  # no user git config
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=60, env=environment)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, files: dict[str, dict | None], message: str = "change") -> str:
        """Write (or, for None, delete) files of the work tree as YAML, commit, push to main; the new SHA."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(content))
        work = ("-C", str(self.work))
        self._git(*work, "add", "--all")
        self._git(*work, "commit", "--quiet", "-m", message)
        self._git(*work, "push", "--quiet", "origin", "HEAD:main")
        return self._git(*work, "rev-parse", "HEAD")

    def head(self) -> str:
        return self._git("-C", str(self.work), "rev-parse", "HEAD")

    def tag(self, name: str) -> str:
        """Tag HEAD with an annotated tag and push it; the SHA of the commit tagged."""
        self._git("-C", str(self.work), "tag", "-a", name, "-m", name)
        self._git("-C", str(self.work), "push", "--quiet", "origin", name)
        return self.head()


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """The deploy repository with one commit: deploy/ renders a Deployment and a Service."""
    repository = GitRepo(tmp_path / "git")
    repository.commit({"deploy/kustomization.yaml": KUSTOMIZATION, "deploy/deployment.yaml": deployment("v1.0.0"),
                       "deploy/service.yaml": SERVICE}, "trip-service v1.0.0")
    return repository


@pytest.fixture
def clock() -> AdjustableClock:
    return AdjustableClock()


@pytest.fixture
def cluster(tmp_path: Path, clock: AdjustableClock) -> Iterator[RunningCluster]:
    """A sandbox cluster with the ArgoCD controller, namespaces argocd-system and production."""
    settings = ArgoCDSettings(work_dir=tmp_path / "argocd", poll_seconds=POLL_SECONDS, clock=clock)
    with running_cluster(tmp_path, argocd=settings) as running:
        with client.ApiClient(client.Configuration(host=running.base_url)) as api:
            for namespace in (ARGOCD_NS, DEST_NS):
                client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        yield running


@pytest.fixture
def api(cluster: RunningCluster) -> Iterator[client.ApiClient]:
    with client.ApiClient(client.Configuration(host=cluster.base_url)) as api_client:
        yield api_client


@pytest.fixture
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def application(repo: GitRepo, *, path: str = "deploy", project: str = "default",
                automated: dict | None = None, **spec: object) -> dict:
    """An Application of the deploy repository's `path` at main, into production."""
    policy = {"automated": automated} if automated is not None else {}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": APP},
            "spec": {"project": project,
                     "source": {"repoURL": f"file://{repo.bare}", "targetRevision": "main", "path": path},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": DEST_NS},
                     "syncPolicy": {**policy, **spec.pop("syncPolicy", {})}, **spec}}


def create(custom: client.CustomObjectsApi, plural: str, body: dict) -> None:
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NS, plural, body)


def patch_app(custom: client.CustomObjectsApi, body: dict) -> None:
    custom.patch_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NS, "applications", APP, body)


def app_when(custom: client.CustomObjectsApi, check: Callable[[dict], object], what: str) -> dict:
    """The Application once `check` holds for it."""
    def current() -> dict | None:
        app = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NS, "applications", APP)
        return app if check(app) else None
    return wait_until(current, what=what)


def synced(sha: str) -> Callable[[dict], bool]:
    """Synced at `sha` by an operation that succeeded there, and Healthy."""
    def check(app: dict) -> bool:
        status = app.get("status") or {}
        operation = status.get("operationState") or {}
        return (status.get("sync", {}).get("status") == "Synced" and status["sync"].get("revision") == sha
                and operation.get("phase") == "Succeeded" and operation["syncResult"]["revision"] == sha
                and status.get("health", {}).get("status") == "Healthy")
    return check


def condition(kind: str) -> Callable[[dict], dict | None]:
    return lambda app: next((c for c in (app.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def sync_result(app: dict, kind: str) -> dict:
    """The last operation's result for the object of `kind`."""
    return next(r for r in app["status"]["operationState"]["syncResult"]["resources"] if r["kind"] == kind)


def assert_valid(app: dict, kind: str = "application") -> None:
    """The object validates against ArgoCD's CRD schema (status included)."""
    schema = json.loads((SCHEMAS / f"{kind}_v1alpha1.json").read_text())
    errors = sorted(Draft7Validator(schema).iter_errors(app), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def read(api: client.ApiClient, kind: str, name: str = APP) -> object:
    reader = {"deployment": client.AppsV1Api(api).read_namespaced_deployment,
              "service": client.CoreV1Api(api).read_namespaced_service}[kind]
    return reader(name, DEST_NS)


def test_application_syncs_the_commit_and_reports_synced_and_healthy(repo: GitRepo, api: client.ApiClient,
                                                                       custom: client.CustomObjectsApi) -> None:
    sha = repo.commit({"deploy/deployment.yaml": deployment("v1.0.1")})
    create(custom, "applications", application(repo, automated={}))
    app = app_when(custom, synced(sha), "the application synced at the commit and healthy")
    status = app["status"]
    operation = status["operationState"]
    assert operation["operation"]["initiatedBy"] == {"automated": True}
    assert operation["message"] == "successfully synced (all tasks run)"
    assert sorted((r["kind"], r["status"], r["message"]) for r in operation["syncResult"]["resources"]) == [
        ("Deployment", "Synced", f"deployment.apps/{APP} created"), ("Service", "Synced", f"service/{APP} created")]
    assert parse_timestamp(status["reconciledAt"]) >= parse_timestamp(operation["finishedAt"])
    assert parse_timestamp(operation["finishedAt"]) >= parse_timestamp(operation["startedAt"])
    assert sorted((r["kind"], r["status"], r["health"]["status"]) for r in status["resources"]) == [
        ("Deployment", "Synced", "Healthy"), ("Service", "Synced", "Healthy")]
    assert [(h["id"], h["revision"]) for h in status["history"]] == [(0, sha)]
    assert status["sync"]["comparedTo"]["source"]["repoURL"] == f"file://{repo.bare}"
    assert status["summary"]["images"] == [f"{IMAGE}:v1.0.1"]
    tracking = read(api, "deployment").metadata.annotations["argocd.argoproj.io/tracking-id"]
    assert tracking == f"{APP}:apps/Deployment:{DEST_NS}/{APP}"
    assert_valid(app)


def test_a_new_commit_is_synced_and_the_revision_moves(repo: GitRepo, api: client.ApiClient,
                                                       custom: client.CustomObjectsApi) -> None:
    first = repo.head()
    create(custom, "applications", application(repo, automated={"selfHeal": True}))
    app_when(custom, synced(first), "the first commit synced")
    second = repo.commit({"deploy/deployment.yaml": deployment("v1.1.0")}, "trip-service v1.1.0")
    app = app_when(custom, synced(second), "the new commit synced and rolled out")
    assert [h["revision"] for h in app["status"]["history"]] == [first, second]
    assert read(api, "deployment").spec.template.spec.containers[0].image == f"{IMAGE}:v1.1.0"
    assert_valid(app)


def test_a_tag_revision_resolves_to_the_tagged_commit(repo: GitRepo, custom: client.CustomObjectsApi) -> None:
    tagged = repo.tag("v1.0.0")
    repo.commit({"deploy/deployment.yaml": deployment("v1.1.0")}, "after the tag")
    body = application(repo, automated={})
    body["spec"]["source"]["targetRevision"] = "v1.0.0"
    create(custom, "applications", body)
    app_when(custom, synced(tagged), "the tagged commit synced")


def test_ignored_fields_patched_live_stay_and_the_app_stays_synced(repo: GitRepo, api: client.ApiClient,
                                                                   custom: client.CustomObjectsApi) -> None:
    ignore = [{"kind": "Service", "name": APP, "jsonPointers": ["/spec/selector"]},
              {"group": "apps", "kind": "Deployment", "jqPathExpressions": [".spec.replicas"]}]
    create(custom, "applications", application(repo, automated={"selfHeal": True}, ignoreDifferences=ignore,
                                               syncPolicy={"syncOptions": ["RespectIgnoreDifferences=true"]}))
    app_when(custom, synced(repo.head()), "the first sync")
    patched_selector = {"app": APP, "version": "green"}
    client.CoreV1Api(api).patch_namespaced_service(APP, DEST_NS, {"spec": {"selector": {"version": "green"}}})
    client.AppsV1Api(api).patch_namespaced_deployment(APP, DEST_NS, {"spec": {"replicas": 1}})
    second = repo.commit({"deploy/deployment.yaml": deployment("v1.1.0")}, "trip-service v1.1.0")
    app = app_when(custom, synced(second), "the new commit synced, the ignored drift kept")
    service_result = sync_result(app, "Service")
    assert service_result["message"] == f"service/{APP} unchanged"
    assert read(api, "service").spec.selector == patched_selector
    live = read(api, "deployment")
    assert live.spec.replicas == 1 and live.spec.template.spec.containers[0].image == f"{IMAGE}:v1.1.0"
    assert app["status"]["sync"]["comparedTo"]["ignoreDifferences"] == ignore
    assert_valid(app)


def test_drift_on_a_field_not_ignored_is_self_healed(repo: GitRepo, api: client.ApiClient,
                                                     custom: client.CustomObjectsApi) -> None:
    sha = repo.head()
    create(custom, "applications", application(repo, automated={"selfHeal": True}))
    app_when(custom, synced(sha), "the first sync")
    core = client.CoreV1Api(api)
    core.patch_namespaced_service(APP, DEST_NS, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
    app = app_when(custom, lambda a: len(a["status"].get("history", [])) == 2 and synced(sha)(a),
                   "a second, self-healing sync of the same commit")
    assert read(api, "service").spec.ports[0].target_port == 8080
    service_result = sync_result(app, "Service")
    assert service_result["message"] == f"service/{APP} configured"


def test_prune_removes_an_object_deleted_from_git(repo: GitRepo, api: client.ApiClient,
                                                  custom: client.CustomObjectsApi) -> None:
    first = repo.head()
    create(custom, "applications", application(repo, automated={"selfHeal": True}))
    app_when(custom, synced(first), "the first sync")
    without_service = repo.commit({"deploy/service.yaml": None,
                                   "deploy/kustomization.yaml": {**KUSTOMIZATION, "resources": ["deployment.yaml"]}})

    def requires_pruning(app: dict) -> bool:
        return (app["status"]["sync"] == {**app["status"]["sync"], "status": "OutOfSync", "revision": without_service}
                and any(r["kind"] == "Service" and r.get("requiresPruning") for r in app["status"]["resources"]))
    app = app_when(custom, requires_pruning, "the Service reported as requiring pruning")
    assert app["status"]["operationState"]["syncResult"]["revision"] == first  # auto-sync does not sync prune-only
    assert read(api, "service").metadata.name == APP
    patch_app(custom, {"spec": {"syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}})
    app = app_when(custom, synced(without_service), "the pruning sync")
    pruned = sync_result(app, "Service")
    assert pruned["status"] == "Pruned"
    assert [r["kind"] for r in app["status"]["resources"]] == ["Deployment"]
    with pytest.raises(ApiException) as gone:
        read(api, "service")
    assert gone.value.status == 404


def test_without_automated_sync_only_a_requested_operation_syncs(repo: GitRepo, api: client.ApiClient,
                                                                 custom: client.CustomObjectsApi) -> None:
    sha = repo.head()
    create(custom, "applications", application(repo))
    app = app_when(custom, lambda a: a.get("status", {}).get("sync", {}).get("status") == "OutOfSync",
                   "the comparison")
    assert app["status"]["health"]["status"] == "Missing" and "operationState" not in app["status"]
    with pytest.raises(ApiException):
        read(api, "deployment")
    patch_app(custom, {"operation": {"sync": {"revision": sha}, "initiatedBy": {"username": "release-bot"}}})
    app = app_when(custom, lambda a: "operation" not in a and synced(sha)(a), "the requested sync, then cleared")
    assert app["status"]["history"][0]["initiatedBy"] == {"username": "release-bot"}
    assert_valid(app)


def test_a_closed_allow_window_holds_the_sync_until_it_opens(repo: GitRepo, custom: client.CustomObjectsApi,
                                                             api: client.ApiClient, clock: AdjustableClock) -> None:
    clock.jump_to(datetime(2025, 3, 3, 1, 50, tzinfo=UTC))
    window = {"kind": "allow", "schedule": "0 2 * * *", "duration": "1h", "applications": ["trip-*"],
              "timeZone": "UTC"}
    project = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": {"name": "release"},
               "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                        "syncWindows": [window]}}
    assert_valid(project, "appproject")
    create(custom, "appprojects", project)
    create(custom, "applications", application(repo, project="release", automated={}))
    app = app_when(custom, condition("SyncError"), "the sync held by the window")
    assert condition("SyncError")(app)["message"] == ("Sync operation blocked by sync window: "
                                                      "allow '0 2 * * *' for 1h (UTC)")
    assert app["status"]["sync"]["status"] == "OutOfSync" and "operationState" not in app["status"]
    with pytest.raises(ApiException):
        read(api, "deployment")
    assert_valid(app)
    clock.advance(timedelta(minutes=15))
    app = app_when(custom, synced(repo.head()), "the sync once the window opened")
    assert "conditions" not in app["status"]


def test_an_active_deny_window_holds_a_requested_sync_until_it_closes(repo: GitRepo, clock: AdjustableClock,
                                                                      custom: client.CustomObjectsApi) -> None:
    clock.jump_to(datetime(2025, 3, 3, 2, 50, tzinfo=UTC))
    window = {"kind": "deny", "schedule": "0 2 * * *", "duration": "1h", "namespaces": [DEST_NS]}
    create(custom, "appprojects", {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                                   "metadata": {"name": "release"}, "spec": {"syncWindows": [window]}})
    body = application(repo, project="release")
    body["operation"] = {"sync": {}, "initiatedBy": {"username": "ops"}}
    create(custom, "applications", body)
    app = app_when(custom, lambda a: a.get("status", {}).get("operationState", {}).get("phase") == "Running",
                   "the operation held by the window")
    assert app["status"]["operationState"]["message"] == ("Sync operation blocked by sync window: "
                                                          "deny '0 2 * * *' for 1h (UTC)")
    assert "operation" in app
    assert_valid(app)
    clock.advance(timedelta(minutes=15))
    app_when(custom, lambda a: "operation" not in a and synced(repo.head())(a), "the operation once the window closed")


def test_a_bad_path_gives_a_comparison_error(repo: GitRepo, custom: client.CustomObjectsApi) -> None:
    create(custom, "applications", application(repo, path="deploy/missing", automated={}))
    app = app_when(custom, condition("ComparisonError"), "the comparison error")
    assert condition("ComparisonError")(app)["message"].endswith("deploy/missing: app path does not exist")
    assert app["status"]["sync"]["status"] == "Unknown"
    assert_valid(app)


def test_kubectl_lists_applications(repo: GitRepo, cluster: RunningCluster, custom: client.CustomObjectsApi,
                                    tmp_path: Path) -> None:
    binary = shutil.which("kubectl")
    assert binary, "kubectl is not on PATH: install it (Debian package kubernetes-client) to run these tests"
    create(custom, "applications", application(repo, automated={}))
    app_when(custom, synced(repo.head()), "the sync")

    def kubectl(*args: str) -> list[list[str]]:
        command = [binary, "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(tmp_path / "kube-cache"), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line.split() for line in done.stdout.strip().splitlines()]

    header, row = kubectl("get", "applications", "-n", ARGOCD_NS)
    assert header == ["NAME", "SYNC", "STATUS", "HEALTH", "STATUS", "AGE"]
    assert row[:3] == [APP, "Synced", "Healthy"] and len(row) == 4
    assert kubectl("get", "app", APP, "-n", ARGOCD_NS)[1][:3] == row[:3]
    wide = kubectl("get", "apps", "-n", ARGOCD_NS, "-o", "wide")
    assert wide[0][-2:] == ["REVISION", "PROJECT"] and wide[1][-2:] == [repo.head(), "default"]


# --- the pieces, without a cluster --------------------------------------------------------------


def test_field_paths_from_json_pointers_and_jq() -> None:
    assert json_pointer("/metadata/annotations/example.com~1rev") == ("metadata", "annotations", "example.com/rev")
    assert jq_path(".spec.template.spec.containers[].image") == ("spec", "template", "spec", "containers", None,
                                                                  "image")
    assert jq_path('.metadata.labels["app.kubernetes.io/version"]') == ("metadata", "labels",
                                                                         "app.kubernetes.io/version")
    assert jq_path(".spec.ports[0]") == ("spec", "ports", "0")
    with pytest.raises(SourceError, match="unsupported jqPathExpression"):
        jq_path('.spec | select(.x == "y")')


def test_keep_live_and_three_way_merge() -> None:
    live = {"spec": {"selector": {"app": "a", "version": "green"}, "clusterIP": "10.0.0.1",
                     "containers": [{"name": "a", "image": "x:2"}]}}
    desired = {"spec": {"selector": {"app": "a"}, "containers": [{"name": "a", "image": "x:3"}]}}
    kept = keep_live(desired, live, [("spec", "selector"), ("spec", "containers", None, "image"), ("spec", "nope")])
    assert kept == {"spec": {"selector": {"app": "a", "version": "green"},
                             "containers": [{"name": "a", "image": "x:2"}]}}
    last = {"metadata": {"labels": {"old": "1", "app": "a"}}}
    merged = three_way({"metadata": {"labels": {"old": "1", "app": "a", "other": "live"}}, "status": {"x": 1}},
                       last, {"metadata": {"labels": {"app": "b"}}})
    assert merged == {"metadata": {"labels": {"app": "b", "other": "live"}}, "status": {"x": 1}}


@pytest.mark.parametrize(("windows", "hour", "manual", "blocked"), [
    ([], 1, False, False),
    ([{"kind": "allow"}], 1, False, True),
    ([{"kind": "allow"}], 2, False, False),
    ([{"kind": "allow", "manualSync": True}], 1, True, False),
    ([{"kind": "deny"}], 2, False, True),
    ([{"kind": "deny", "manualSync": True}], 2, True, False),
    ([{"kind": "deny", "manualSync": True}], 2, False, True),
    ([{"kind": "deny"}, {"kind": "allow"}], 2, False, True),
    ([{"kind": "deny"}], 4, False, False),
])
def test_sync_window_rule(windows: list[dict], hour: int, manual: bool, blocked: bool) -> None:
    parsed = [ProjectWindow.of({"schedule": "0 2 * * *", "duration": "1h", **w}) for w in windows]
    assert bool(blocking(parsed, datetime(2025, 3, 3, hour, 30, tzinfo=UTC), manual)) == blocked


def test_sync_window_matching() -> None:
    window = ProjectWindow.of({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
                               "applications": ["trip-*"], "namespaces": ["prod*"]})
    assert window.matches("trip-service", "staging", [])
    assert not window.matches("user-service", "staging", [])
    both = ProjectWindow.of({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
                             "applications": ["trip-*"], "namespaces": ["prod*"], "andOperator": True})
    assert both.matches("trip-service", "production", []) and not both.matches("trip-service", "staging", [])


@pytest.mark.parametrize(("status", "generation", "health"), [
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
      "conditions": [{"type": "Available", "status": "True"}]}, 2, "Healthy"),
    ({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}, 2, "Progressing"),
    ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}, 2, "Progressing"),
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}, 2, "Progressing"),
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
      "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}, 2, "Degraded"),
])
def test_deployment_health(status: dict, generation: int, health: str) -> None:
    deployment_object = {"metadata": {"name": APP, "generation": generation}, "spec": {"replicas": 2},
                         "status": status}
    assert deployment_health(deployment_object).status == health
