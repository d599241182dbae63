"""The checkers tests/gitops runs on rendered manifests, each returning the problems it finds as text:
`kubectl kustomize`, kubernetes-validate (core kinds), the CRD JSON schemas in ../shared, checkov,
and the routing rule the release relies on (a split route's weights are 0-100 and add up to 100)."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import yaml
from jsonschema import Draft7Validator

from tests.conftest import REPO

MANIFESTS = REPO / "infra" / "k8s-manifests"
CRD_SCHEMAS = REPO.parent / "shared" / "schemas" / "crds"
CUSTOM_GROUPS = ("networking.istio.io", "flagger.app", "argoproj.io")
KUBERNETES_VERSION = "1.32"  # the API version the sandbox serves


def kustomize(directory: Path) -> list[dict]:
    """What `kubectl kustomize directory` renders; AssertionError with kubectl's message when it fails."""
    done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr.strip()}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def label(obj: dict) -> str:
    return f"{obj['kind']} {obj['metadata'].get('namespace', '-')}/{obj['metadata']['name']}"


def group(obj: dict) -> str:
    return obj["apiVersion"].rpartition("/")[0]


def core_problems(objects: list[dict]) -> list[str]:
    """Core objects against the Kubernetes OpenAPI schemas, strictly (an unknown field is an error)."""
    problems = []
    for obj in (o for o in objects if group(o) not in CUSTOM_GROUPS):
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{label(obj)}: {'/'.join(map(str, err.path))}: {err.message}")
    return problems


@cache
def _crd_validator(api_version: str, kind: str) -> Draft7Validator:
    group_name, _, version = api_version.rpartition("/")
    path = CRD_SCHEMAS / group_name / f"{kind.lower()}_{version}.json"
    assert path.is_file(), f"no CRD schema {path} (shared/ must sit beside the repository)"
    return Draft7Validator(json.loads(path.read_text()))


def crd_problems(objects: list[dict]) -> list[str]:
    """Istio, Flagger and ArgoCD objects against their CRD's JSON schema."""
    return [f"{label(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for obj in objects if group(obj) in CUSTOM_GROUPS
            for e in _crd_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)]


def weight_problems(objects: list[dict]) -> list[str]:
    """Each VirtualService route split over several destinations: every weight within 0-100, all adding up to 100."""
    problems = []
    for vs in (o for o in objects if o["kind"] == "VirtualService"):
        for i, route in enumerate(vs["spec"].get("http", [])):
            where = f"{label(vs)} http[{i}] ({route.get('name', 'unnamed')})"
            destinations = route.get("route", [])
            if len(destinations) < 2:
                continue
            weights = [d.get("weight", 0) for d in destinations]
            problems += [f"{where}: weight {w} to subset {d['destination'].get('subset')} is outside 0-100"
                         for d, w in zip(destinations, weights) if not 0 <= w <= 100]
            if sum(weights) != 100:
                problems.append(f"{where}: weights add up to {sum(weights)}, not 100")
    return problems


def checkov_binary() -> str:
    """checkov from .venv-tools (made by `make venv`), else from PATH."""
    local = REPO / ".venv-tools" / "bin" / "checkov"
    found = str(local) if local.exists() else shutil.which("checkov")
    assert found, "checkov is not installed: run `make venv` (it installs checkov into .venv-tools)"
    return found


def checkov_failures(objects: list[dict], directory: Path) -> set[tuple[str, str]]:
    """(check id, resource) of every failed checkov Kubernetes check on `objects`, written to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rendered.yaml").write_text(yaml.safe_dump_all(objects))
    done = subprocess.run([checkov_binary(), "--directory", str(directory), "--framework", "kubernetes",
                           "--skip-download", "--output", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), f"checkov failed to run: {done.stderr.strip()[-2000:]}"
    report = json.loads(done.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}


def contains(actual: object, expected: object, path: str = "") -> list[str]:
    """Where `actual` lacks or differs from a field of `expected` (lists compared item by item)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return [p for key, value in expected.items() for p in contains(actual.get(key), value, f"{path}.{key}")]
    if isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        return [p for i, (a, e) in enumerate(zip(actual, expected)) for p in contains(a, e, f"{path}[{i}]")]
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]
