"""`tripgen-release`: the command line of the release orchestrator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import httpx

from delivery import __version__
from delivery.audit import verify
from delivery.audit_blob import check_against_blob
from delivery.policy.loader import PolicyError, load_policy
from delivery.policy.summary import render_summary
from delivery.approver_cli import approve, status
from delivery.audit_report_cli import report
from delivery.diagnose_cli import diagnose
from delivery.kpi_cli import kpi
from delivery.dr.cli import dr_drill
from delivery.sandbox_cli import sandbox
from delivery.settings import Settings
from deployments.cli import deployments


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tripgen-release")
def cli() -> None:
    """Release TripGen's services to Kubernetes as Prefect flows: gates, staging, approvals,
    blue-green or canary, the watch and rollback."""


@cli.group()
def policy() -> None:
    """Inspect release policy files (every threshold, approver and window of a release)."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Validate FILE and print a short summary; exit 2 listing every problem when it is invalid."""
    try:
        loaded = load_policy(file)
    except PolicyError as err:
        click.echo(err.report(), err=True)
        click.echo(f"{file}: {len(err.problems)} problem(s); fix them and run this check again.", err=True)
        sys.exit(2)
    click.echo(render_summary(file, loaded))


cli.add_command(sandbox)
cli.add_command(approve)
cli.add_command(status)
cli.add_command(deployments)
cli.add_command(kpi)
cli.add_command(dr_drill)
cli.add_command(diagnose)


@cli.command()
@click.option("--policy", "policy_file", default="policies/demo.yaml", show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--state-dir", default=".sandbox", show_default=True, type=click.Path(file_okay=False), help="Logs, SQLite, kubeconfig, audit log.")
@click.option("--keep", is_flag=True, help="Leave the Prefect server, sandbox and flow server running afterwards.")
@click.option("--strategy", type=click.Choice(["blue-green", "canary"]), default="blue-green", show_default=True)
@click.option("--mode", type=click.Choice(["direct", "gitops"]), default="direct", show_default=True,
              help="gitops: each production change is a commit to a local manifests repository that the sandbox's ArgoCD syncs.")
@click.option("--regions", is_flag=True, help="Two sandbox clusters: Korea Central, then Korea South once its watch passed.")
def demo(policy_file: str, state_dir: str, keep: bool, strategy: str, mode: str, regions: bool) -> None:
    """Run full releases on the sandbox: v1.2.0 goes live after two approvals, v1.3.0-faulty is rolled back."""
    from pathlib import Path

    from delivery.demo import run_demo

    if regions and mode == "gitops":
        raise click.UsageError("--regions releases directly to both clusters: leave out --mode gitops")
    run_demo(Path(policy_file), Path(state_dir), keep, ("v1.2.0", "v1.3.0-faulty"), strategy, mode, regions)


@cli.command("rollback")
@click.option("--to", "target", required=True, help="The version to roll back to, e.g. v1.2.0 (it must have run in production).")
@click.option("--reason", required=True, help="Why: goes to the approval form, the audit log and the notification.")
@click.option("--initiator", default=lambda: os.environ.get("USER", "on-call"), show_default="$USER")
@click.option("--service", "services", multiple=True, help="Only these services (default: all).")
@click.option("--deployment", default="rollback/production", show_default=True, help="The Prefect deployment to run.")
@click.option("--api-url", envvar="PREFECT_API_URL", required=True, help="Prefect API (default: $PREFECT_API_URL).")
def rollback_command(target: str, reason: str, initiator: str, services: tuple[str, ...], deployment: str, api_url: str) -> None:
    """Start a rollback through Prefect's API (as the GitHub dispatch does); prints the run's link."""
    from delivery.prefect_rest import PrefectRest
    from delivery.release.plan import PlanError
    from delivery.release.rollback import validate_request

    try:
        validate_request(target, reason)
    except PlanError as err:
        raise click.UsageError(str(err)) from None
    api = PrefectRest(api_url, api_key=os.environ.get("PREFECT_API_KEY"), auth_string=os.environ.get("PREFECT_API_AUTH_STRING"))
    try:
        found = api.deployment(deployment)
    except LookupError as err:
        raise click.ClickException(str(err)) from None
    parameters = {"target_version": target, "reason": reason, "initiator": initiator, "services": list(services) or None}
    run = api.create_run(found["id"], parameters)
    click.echo(f"rollback to {target} started: {api_url.removesuffix('/api')}/runs/flow-run/{run['id']} (waiting for one approval)")


@cli.command("recover")
@click.argument("tag")
@click.option("--as", "initiator", default=lambda: os.environ.get("USER", "on-call"), show_default="$USER", help="Who recovers (audit log).")
@click.option("--force", is_flag=True, help="Recover even if the server still shows the release run Running or Paused (its worker is known dead).")
def recover_command(tag: str, initiator: str, force: bool) -> None:
    """Restore production from TAG's unfinished release record, as the recover automation does; exit 1 if a service is left unrestored."""
    from delivery.release.plan import PlanError, parse_tag
    from flows.recover import recover

    try:
        parse_tag(tag)
    except PlanError as err:
        raise click.UsageError(str(err)) from None
    state = recover(tag=tag, initiator=initiator, force=force, return_state=True)
    result = state.result(raise_on_failure=False)
    if not state.is_completed():
        click.echo(f"recover {tag}: {state.message}", err=True)
        sys.exit(1)
    for line in result.get("skipped", []):
        click.echo(f"not recovered: {line} (add --force if its worker is gone)")
    if not result["recovered"]:
        click.echo(f"recover {tag}: no unfinished release record; production was not changed")
    for done in result["recovered"]:
        click.echo(f"{done['record']}: {'restored' if done['complete'] else 'NOT fully restored'}: {done['restored']}")
    if not all(done["complete"] for done in result["recovered"]):
        sys.exit(1)


@cli.group()
def audit() -> None:
    """Inspect the append-only audit log of releases, approvals, switches and rollbacks."""


@audit.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--against-blob", is_flag=True, help="Also compare FILE line by line with its Azure Blob copy and chain head (TRIPGEN_AUDIT_BLOB_*).")
def audit_verify(file: str, against_blob: bool) -> None:
    """Check the hash chain of FILE (and its blob copy); exit 1 naming the first broken line."""
    result = verify(file)
    if result.intact:
        click.echo(f"{file}: {result.records} records, hash chain intact")
    else:
        click.echo(f"{file}:{result.broken_line}: {result.problem} ({result.records} records before it are intact)", err=True)
    matches = True
    if against_blob:
        matches, line = check_against_blob(Path(file), Settings())
        click.echo(line, err=not matches)
    if not (result.intact and matches):
        sys.exit(1)


audit.add_command(report)


def main() -> None:
    """Console-script entry point; an unreachable server is one line naming it, not a traceback."""
    try:
        cli(prog_name="tripgen-release")
    except httpx.TransportError as err:
        url = err.request.url.copy_with(query=None)
        click.echo(f"tripgen-release: cannot reach {url} ({err}): check the URL (PREFECT_API_URL, --api-url) and that the server runs", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
