"""Approvers' tools: `tripgen-release approve` and `tripgen-release status`, over Prefect's REST API."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from delivery.kube.aks import AksError
from delivery.policy.loader import PolicyError
from delivery.prefect_rest import FINAL_STATES, PrefectRest
from delivery.release.runtime import Runtime
from delivery.release.traffic import production_traffic
from delivery.settings import Settings

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RUN_LINK = re.compile(r"/runs/flow-run/([0-9a-f-]{36})/?(?:[?#].*)?$")  # the link in the approval code's message
DECISION_WAIT_SECONDS = 30
DECISION_WORDS = ("approved by", "approval refused", "rejected by", "emergency override")

api_url_option = click.option("--api-url", envvar="PREFECT_API_URL", required=True, help="Prefect API (default: $PREFECT_API_URL).")


def _api(api_url: str) -> PrefectRest:
    return PrefectRest(api_url, api_key=os.environ.get("PREFECT_API_KEY"), auth_string=os.environ.get("PREFECT_API_AUTH_STRING"))


def find_run(api: PrefectRest, target: str) -> dict:
    """A flow run by id or by its link in the Prefect UI, or the newest `release-<tag>` run; UsageError naming what
    was looked for."""
    if link := RUN_LINK.search(target):
        target = link.group(1)
    if UUID.match(target):
        return api.flow_run(target)
    runs = api.runs_named(target if target.startswith(("release-", "rollback-")) else f"release-{target}")
    if not runs:
        raise click.UsageError(f"no flow run for '{target}': give a flow run id, its link or a release tag such as v1.2.0")
    return runs[0]


@click.command("approve")
@click.argument("target")
@click.option("--as", "approver", required=True, help="Your user name, as listed in the policy's approver groups.")
@click.option("--code", required=True, help="The personal code you were sent for this approval (it proves who answers).")
@click.option("--reject", is_flag=True, help="Reject instead of approving: the release ends.")
@click.option("--comment", default="", help="Why (audit log and summary).")
@api_url_option
def approve(target: str, approver: str, code: str, reject: bool, comment: str, api_url: str) -> None:
    """Answer the approval form of TARGET (a flow run id, its link from the code's message, or a tag), as the UI's
    Resume button does."""
    api = _api(api_url)
    run = find_run(api, target)
    pause = api.pause_of(run)
    if pause is None:
        raise click.ClickException(f"{run['name']} is not waiting for approval (it is {run['state']['type'].lower()})")
    sent_at = datetime.now(timezone.utc)
    api.resume(run["id"], {"approver": approver, "code": code, "approve": not reject, "comment": comment})
    click.echo(f"{run['name']}: answered {pause.key} as {approver} ({'reject' if reject else 'approve'})")
    click.echo(what_the_flow_did(api, run["id"], sent_at))


def what_the_flow_did(api: PrefectRest, flow_run_id: str, since: datetime) -> str:
    """The flow's own log line about the answer (accepted, refused and why, rejected), or its state."""
    deadline = time.monotonic() + DECISION_WAIT_SECONDS
    while time.monotonic() < deadline:
        for line in api.logs(flow_run_id, since=since):
            if any(word in line["message"] for word in DECISION_WORDS):
                return f"the release says: {line['message']}"
        state = api.flow_run(flow_run_id)["state"]
        if state["type"] in FINAL_STATES:
            return f"the release is now {state['type'].lower()}: {state.get('message') or ''}".rstrip(": ")
        time.sleep(0.5)
    return "the release has not answered yet; see `tripgen-release status`"


@click.command("status")
@click.argument("target", required=False)
@api_url_option
@click.option("--kubeconfig", envvar="TRIPGEN_KUBECONFIG", help="Read production traffic from this cluster (default: $TRIPGEN_KUBECONFIG; else the policy's AKS cluster).")
@click.option("--policy", "policy_file", envvar="TRIPGEN_POLICY", default="policies/tripgen.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The release policy: its services and production namespace.")
def status(target: str | None, api_url: str, kubeconfig: str | None, policy_file: str) -> None:
    """Where a release stands: state, current step, the approval it waits for, production traffic per service.

    Without TARGET: the recent releases, then the traffic."""
    api = _api(api_url)
    show_run(api, target) if target else show_recent(api)
    show_traffic(Settings(policy=Path(policy_file), kubeconfig=kubeconfig))


def show_recent(api: PrefectRest) -> None:
    for run in api.recent_runs("release-"):
        click.echo(f"{run['name']:<28} {run['state']['type'].lower():<10} {run.get('start_time') or ''}")


def show_traffic(settings: Settings) -> None:
    """Per service: the live color, the canary weight and the image, read from the cluster (when one is reachable)."""
    try:
        runtime = Runtime(settings)
        if not settings.kubeconfig and runtime.policy.cluster.azure is None:
            click.echo("traffic: give --kubeconfig (or TRIPGEN_KUBECONFIG) to read it from the cluster")
            return
        rows = production_traffic(runtime.policy, runtime.deployments, runtime.routing)
    except ApiException as err:
        click.echo(f"traffic: the cluster answered {err.status} {err.reason}")
        return
    except (PolicyError, AksError, ConfigException, urllib3.exceptions.HTTPError, OSError) as err:
        click.echo(f"traffic: cannot read the cluster: {err}")
        return
    click.echo("traffic in production (read from the cluster):")
    for row in rows:
        click.echo(f"  {row.line()}")


def show_run(api: PrefectRest, target: str) -> None:
    run = find_run(api, target)
    state = run["state"]
    click.echo(f"{run['name']}: {state['type'].lower()}" + (f" — {state['message']}" if state.get("message") else ""))
    click.echo(f"  tags: {', '.join(run.get('tags') or [])}")
    steps = api.task_runs(run["id"])
    if steps:
        recent = "; ".join(f"{t['name']} ({t['state']['type'].lower()})" for t in steps[-3:])
        click.echo(f"  last steps: {recent}")
    pause = api.pause_of(run)
    if pause:
        click.echo(f"  waiting for input ({pause.key}): answer with `tripgen-release approve {target} --as NAME`")
        summary = [line for line in pause.description.splitlines() if line.startswith(("### Approvals", "- "))]
        for line in summary:
            click.echo(f"    {line}")
