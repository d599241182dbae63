"""`tripgen-release`: the command line of the release orchestrator."""

from __future__ import annotations

import sys

import click

from delivery import __version__
from delivery.audit import verify
from delivery.policy.loader import PolicyError, load_policy
from delivery.policy.summary import render_summary
from delivery.sandbox_cli import sandbox


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


@cli.command()
@click.option("--policy", "policy_file", default="policies/demo.yaml", show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--state-dir", default=".sandbox", show_default=True, type=click.Path(file_okay=False), help="Logs, SQLite, kubeconfig, audit log.")
@click.option("--keep", is_flag=True, help="Leave the Prefect server, sandbox and flow server running afterwards.")
@click.option("--strategy", type=click.Choice(["blue-green", "canary"]), default="blue-green", show_default=True)
def demo(policy_file: str, state_dir: str, keep: bool, strategy: str) -> None:
    """Run full releases on the sandbox: v1.2.0 goes live after two approvals, v1.3.0-faulty is rolled back."""
    from pathlib import Path

    from delivery.demo import run_demo

    run_demo(Path(policy_file), Path(state_dir), keep, ("v1.2.0", "v1.3.0-faulty"), strategy)


@cli.group()
def audit() -> None:
    """Inspect the append-only audit log of releases, approvals, switches and rollbacks."""


@audit.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def audit_verify(file: str) -> None:
    """Check the hash chain of FILE; exit 1 naming the first broken line."""
    result = verify(file)
    if result.intact:
        click.echo(f"{file}: {result.records} records, hash chain intact")
        return
    click.echo(f"{file}:{result.broken_line}: {result.problem} ({result.records} records before it are intact)", err=True)
    sys.exit(1)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tripgen-release")


if __name__ == "__main__":
    main()
