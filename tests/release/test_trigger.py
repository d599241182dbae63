"""The GitHub Actions trigger script against a Prefect server: lookup, idempotency, following, usage errors,
and the release workflow's own steps run as GitHub runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from ruamel.yaml import YAML

from deployments.trigger import follow, main
from delivery.prefect_rest import PrefectRest
from tests.conftest import REPO
from tests.kpi.repos import tagged_repo

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@pytest.fixture
def deployment(prefect_api, monkeypatch):
    from flows.release import release

    release.to_deployment(name="production").apply()
    api_url = str(prefect_api.http.base_url).rstrip("/")
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    return PrefectRest(api_url)


def test_one_idempotency_key_makes_one_run(deployment, capsys):
    args = ["release/production", "--param", "tag=v1.2.0", "--param", "initiator=octocat", "--idempotency-key", "release-v1.2.0-trigger-test", "--no-follow"]
    assert main(args) == 0 and main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "/runs/flow-run/" in line]
    assert len(lines) == 2 and lines[0].split("/")[-1] == lines[1].split("/")[-1]
    run = deployment.flow_run(lines[0].split("/")[-1])
    assert run["parameters"] == {"tag": "v1.2.0", "initiator": "octocat"}


def test_follow_ends_with_the_run(deployment):
    from prefect.client.orchestration import get_client
    from prefect.states import Failed

    found = deployment.deployment("release/production")
    run = deployment.create_run(found["id"], {"tag": "v1.3.0"})
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run["id"], Failed(message="v1.3.0 rolled back: 5xx rate 5%"), force=True)
    printed: list[str] = []
    assert follow(deployment, run["id"], "http://ui", out=printed.append) == 1
    assert "FAILED (v1.3.0 rolled back: 5xx rate 5%)" in printed[-1]


def test_usage_errors_exit_2(deployment, capsys):
    assert main(["release/nowhere", "--no-follow"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["release/production", "--param", "no-equals-sign"])
    assert exit_info.value.code == 2


def test_values_take_the_types_of_the_parameter_schema(deployment, capsys):
    args = ["release/production", "--param", "tag=v1.2.0", "--param", "hotfix=yes", "--param", "services=user-service, trip-service",
            "--param", "reason=", "--no-follow"]
    assert main(args) == 0
    run = deployment.flow_run(capsys.readouterr().out.strip().split("/")[-1])
    assert run["parameters"] == {"tag": "v1.2.0", "hotfix": True, "services": ["user-service", "trip-service"], "reason": ""}


@pytest.mark.parametrize("params, message", [
    (["tag=v1.2.0", "tga=v1.2.1"], "has no parameter 'tga' (it takes tag, services,"),
    (["tag=v1.2.0", "hotfix=maybe"], "--param hotfix=maybe: expected boolean"),
    (["tag=v1.2.0", "services=[\"user-service\""], "--param services=["),
    (["initiator=octocat"], "release/production needs --param tag=..."),
    (["tag=1.4"], "--param tag=1.4: The version to release, vMAJOR.MINOR.PATCH"),
    (["tag=v1.2.0", "commit_time=2026-11-26T08:00:00"], "commit_time=2026-11-26T08:00:00: not a date-time with its UTC offset"),
    (["tag=v1.2.0", "commit_time=yesterday"], "--param commit_time=yesterday: not a date-time"),
])
def test_parameters_the_deployment_cannot_take_exit_2_before_any_run(deployment, capsys, params, message):
    args = ["release/production", *[a for p in params for a in ("--param", p)], "--no-follow"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_run_the_server_refuses_by_its_schema_exits_2(deployment, capsys):
    assert main(["release/production", "--param", "tag=v1.2.0", "--param", "strategy=rolling", "--no-follow"]) == 2
    assert "release/production refused the run:" in capsys.readouterr().err


def run_step(step: dict, cwd, context: dict[str, str], output) -> None:
    """Bash runs the step's script as GitHub does, its env's ${{ }} looked up in `context` (an unknown one fails)."""
    env = {name: EXPRESSION.sub(lambda found: context[found.group(1)], str(value)) for name, value in step.get("env", {}).items()}
    path = f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": path, "HOME": os.environ["HOME"], "GITHUB_REF_NAME": context["github.ref_name"], "GITHUB_OUTPUT": str(output), **env})
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)


def test_the_workflow_passes_the_tags_commit_time_and_author(deployment, tmp_path, capsys):
    """Its steps after checkout and install, in a clone whose v1.2.0 was committed at 08:00 +09:00; the trigger starts
    the run without following it (no worker here)."""
    clone = tagged_repo(tmp_path / "clone", datetime(2026, 11, 26, tzinfo=timezone(timedelta(hours=9))))
    steps = {step.get("name"): step for step in YAML(typ="safe").load(WORKFLOW.read_text())["jobs"]["release"]["steps"]}
    read, start = steps["Read the tag's commit time and author"], steps["Start and follow the release"]
    context = {"github.ref_name": "v1.2.0", "github.actor": "octocat", "vars.PREFECT_API_URL": os.environ["PREFECT_API_URL"],
               "secrets.PREFECT_API_KEY": "", "secrets.PREFECT_API_AUTH_STRING": ""}
    run_step(read, clone, context, tmp_path / "read-output")
    outputs = dict(line.split("=", 1) for line in (tmp_path / "read-output").read_text().splitlines())
    context |= {f"steps.{read['id']}.outputs.{name}": value for name, value in outputs.items()}
    run_step({**start, "run": start["run"].rstrip() + " --no-follow"}, REPO, context, tmp_path / "start-output")
    run = deployment.flow_run(capsys.readouterr().out.strip().rsplit("/", 1)[-1])
    assert run["parameters"] == {"tag": "v1.2.0", "initiator": "octocat", "commit_time": "2026-11-26T08:00:00+09:00",
                                 "commit_author": "dev@example.com"}
