"""Releases through the stack docker-compose.yml defines, run without Docker: `prefect server start` on
PostgreSQL, the deployments of prefect.yaml, a process worker, the GitHub Actions trigger script and
`tripgen-release approve` — each over HTTP, as in production."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from delivery.kube import Deployments, Routing, connect
from delivery.prefect_rest import FINAL_STATES, PrefectRest
from tests.conftest import REPO
from tests.deploy.browser import approval_form, start_run_from_ui
from tests.deploy.conftest import Stack
from tests.release.conftest import digest_image
from tests.waiting import never_within, wait_until

SERVICES = ("user-service", "trip-service", "ai-service", "location-service")
RELEASE_TIMEOUT = 240
LOCK_WATCH_SECONDS = 10


RUN_APPEARS_WITHIN = 120  # seconds: a Python process starting and calling the API, on a loaded 2-core machine


def trigger(stack: Stack, tag: str, *extra: str) -> subprocess.Popen:
    """What .github/workflows/release.yml runs for a pushed tag."""
    command = [sys.executable, "-m", "deployments.trigger", "release/production", "--param", f"tag={tag}",
               "--param", "initiator=octocat", "--idempotency-key", f"release-{tag}", *extra]
    return subprocess.Popen(command, env=stack.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start(stack: Stack, tag: str) -> str:
    """Trigger without following, as a re-run workflow might; the flow run id the script printed."""
    started = trigger(stack, tag, "--no-follow")
    output, _ = started.communicate(timeout=60)
    assert started.returncode == 0, output
    return output.strip().rsplit("/", 1)[-1]


def only_run(api: PrefectRest, tag: str) -> dict:
    runs = api.runs_named(f"release-{tag}")
    assert len(runs) == 1, [r["id"] for r in runs]
    return runs[0]


def wait_for_approval(api: PrefectRest, flow_run_id: str, after_key: str | None = None) -> str:
    """The key of the next approval pause; fails when the run ends first."""
    run, pause = api.wait_for(flow_run_id, RELEASE_TIMEOUT, after_key=after_key)
    assert pause is not None, f"{run['name']} ended {run['state']['type']}: {run['state'].get('message')}"
    return pause.key


def wait_until_final(api: PrefectRest, flow_run_id: str) -> dict:
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while (run := api.flow_run(flow_run_id))["state"]["type"] not in FINAL_STATES:
        assert time.monotonic() < deadline, f"{run['name']} still {run['state']['type']}"
        time.sleep(1)
    return run


def approve(stack: Stack, api: PrefectRest, tag: str, flow_run_id: str, *answers: tuple[str, str], after: str | None = None) -> None:
    """Answer each approval pause after the one keyed `after` in turn with `tripgen-release approve` and its code."""
    key = after
    for approver, expected in answers:
        key = wait_for_approval(api, flow_run_id, after_key=key)
        answered = stack.cli("approve", tag, "--as", approver, "--code", stack.code(approver, flow_run_id),
                             "--comment", "checked the staging report")
        assert answered.returncode == 0 and expected in answered.stdout, answered.stdout + answered.stderr


def images(stack: Stack, namespace: str) -> dict[str, str]:
    """What each service runs in `namespace`: staging's rolling Deployment, production's live color."""
    connection = connect(str(stack.kubeconfig))
    deployments, routing = Deployments(connection), Routing(connection)
    if namespace == "staging":
        return {s: deployments.image_of("staging", s) for s in SERVICES}
    return {s: deployments.image_of("production", f"{s}-{routing.selected_color('production', s)}") for s in SERVICES}


def released(tag: str) -> dict[str, str]:
    return {s: digest_image(s, tag) for s in SERVICES}


@pytest.fixture(scope="module")
def api(stack: Stack) -> PrefectRest:
    return PrefectRest(stack.api_url, auth_string=stack.auth_string)


def test_deployments_are_registered_on_the_worker_pool_with_enforced_schemas(stack: Stack, api: PrefectRest) -> None:
    for name in ("release/production", "rollback/production"):
        deployment = api.deployment(name)
        assert deployment["work_pool_name"] == "tripgen-release" and deployment["enforce_parameter_schema"]
        assert "tripgen" in deployment["tags"] and deployment["description"]
    schema = api.deployment("release/production")["parameter_openapi_schema"]
    assert schema["required"] == ["tag"] and schema["properties"]["tag"]["description"]
    refused = api.http.post(f"/deployments/{api.deployment('release/production')['id']}/create_flow_run",
                            json={"parameters": {"tag": "v1.2.0", "hotfix": "maybe"}})
    assert refused.status_code == 409 and "hotfix" in refused.text  # the schema is enforced by the server
    not_a_tag = api.http.post(f"/deployments/{api.deployment('release/production')['id']}/create_flow_run",
                              json={"parameters": {"tag": "1.4"}})
    assert not_a_tag.status_code == 409 and "does not match" in not_a_tag.text
    assert api.http.post("/work_pools/filter", json={}).json()[0]["name"] == "tripgen-release"


def read_lines(process: subprocess.Popen) -> list[str]:
    """The process's output lines as they come (a thread reads them), for waiting on what it prints."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    return lines


def test_a_pushed_tag_is_released_by_the_worker_after_two_approvals(stack: Stack, api: PrefectRest) -> None:
    follower = trigger(stack, "v1.2.0")
    printed = read_lines(follower)
    run = None
    deadline = time.monotonic() + RUN_APPEARS_WITHIN
    while run is None and time.monotonic() < deadline:
        runs = api.runs_named("release-v1.2.0")
        run = runs[0] if runs else time.sleep(0.5)
    assert run is not None, f"the trigger created no run within {RUN_APPEARS_WITHIN}s: {''.join(printed)}"
    first_key = wait_for_approval(api, run["id"])

    assert start(stack, "v1.2.0") == run["id"]  # the workflow re-run for the same tag
    assert only_run(api, "v1.2.0")["id"] == run["id"]

    assert first_key == "approval-1"
    wait_until(lambda: any("waiting for approval" in line for line in printed), 60, "the trigger to report the pause")
    approve(stack, api, "v1.2.0", run["id"], ("demo-lead", "approved by demo-lead; 1 more needed"),
            ("demo-ops", "approved by demo-ops"))
    follower.wait(timeout=RELEASE_TIMEOUT)
    wait_until(lambda: any("COMPLETED" in line or "FAILED" in line for line in printed), 10, "the trigger's last line")
    output = "".join(printed)
    assert follower.returncode == 0, output + stack.log("worker")[-4000:]
    assert "waiting for approval" in output and "release-v1.2.0: COMPLETED" in output
    assert images(stack, "production") == released("v1.2.0") and images(stack, "staging") == released("v1.2.0")
    assert api.flow_run(run["id"])["work_pool_name"] == "tripgen-release"


def test_a_second_release_touches_nothing_until_the_paused_one_ends(stack: Stack, api: PrefectRest) -> None:
    """Also through the Prefect UI in headless Chromium: the second release is started from the deployment's
    Run form, and the approver's Resume form of the paused one shows its fields."""
    before_production = images(stack, "production")
    first = start(stack, "v1.3.0")
    wait_for_approval(api, first)
    assert images(stack, "staging") == released("v1.3.0")

    # a release manager starts the next release from the UI: the deployment's Run > Custom run form
    release_id = api.deployment("release/production")["id"]
    second = start_run_from_ui(stack.ui_url, release_id, {"tag": "v1.4.0", "initiator": "release-manager-kim"},
                               stack.logs / "run-form.png", auth_string=stack.auth_string)
    assert api.flow_run(second)["parameters"]["initiator"] == "release-manager-kim"

    def second_goes_on() -> None:
        state = api.flow_run(second)["state"]
        assert state["type"] not in FINAL_STATES, f"the second release ended {state['type']}: {state.get('message')}"

    waiting = wait_until(lambda: next((e for e in api.logs(second) if "waiting for the" in e["message"]), None), 90,
                         "the second release to reach the release lock", interval=1, invariant=second_goes_on)

    def past_the_lock() -> str | None:
        """What a second release that ignored the lock would show: it holds the lock, has left RUNNING, or changed staging."""
        since = datetime.fromisoformat(waiting["timestamp"])
        if any("holding the" in entry["message"] for entry in api.logs(second, since=since)):
            return "it logged that it holds the lock"
        if (state := api.flow_run(second)["state"]["type"]) != "RUNNING":
            return f"it is {state}"
        return None if (staging := images(stack, "staging")) == released("v1.3.0") else f"staging runs {staging}"

    # the paused first release never lets go, so no later event can stand for "the lock held": watch the whole bound
    # for the second getting past it (twice the 5 s within which one that ignored the lock changes staging)
    never_within(past_the_lock, LOCK_WATCH_SECONDS, "the second release got past the lock the paused one holds",
                 interval=0.5)

    assert images(stack, "staging") == released("v1.3.0") and images(stack, "production") == before_production
    # demo-lead answers in the UI's Resume form with the code the worker mailed them; demo-ops with the CLI
    first_key, since = wait_for_approval(api, first), datetime.now(timezone.utc)
    typed = {"approver": "demo-lead", "code": stack.code("demo-lead", first), "comment": "checked in the UI"}
    shown = approval_form(stack.ui_url, first, stack.logs / "approval-form.png", auth_string=stack.auth_string, answer=typed)
    assert shown["run_name"] == "release-v1.3.0" and shown["state"] == "Paused"
    assert {"approver", "code", "approve", "comment"} <= set(shown["fields"]) and shown["fields"]["approve"]["value"] is True
    assert "v1.3.0" in shown["description"] and (stack.logs / "approval-form.png").stat().st_size > 0
    wait_until(lambda: any("approved by demo-lead; 1 more needed" in e["message"] for e in api.logs(first, since=since)), 60,
               "the flow to accept demo-lead's answer from the UI")

    approve(stack, api, "v1.3.0", first, ("demo-ops", "approved by demo-ops"), after=first_key)
    assert wait_until_final(api, first)["state"]["type"] == "COMPLETED"
    assert images(stack, "production") == released("v1.3.0")

    wait_for_approval(api, second)  # the second release now ran staging and asks for approval
    assert images(stack, "staging") == released("v1.4.0")
    rejected = stack.cli("approve", "v1.4.0", "--as", "demo-lead", "--code", stack.code("demo-lead", second), "--reject",
                         "--comment", "hold until Monday")
    assert rejected.returncode == 0 and "rejected by demo-lead" in rejected.stdout, rejected.stdout + rejected.stderr
    assert wait_until_final(api, second)["state"]["type"] == "FAILED"
    assert images(stack, "production") == released("v1.3.0")
