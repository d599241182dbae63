"""`tripgen-release diagnose`: the emergency procedure's look at a service, from a shell (SPEC §8)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from delivery.release.plan import PlanError, select_services
from delivery.release.runtime import Runtime
from delivery.settings import Settings


@click.command("diagnose")
@click.argument("service", required=False)
@click.option("--env", "environment", type=click.Choice(["production", "staging"]), default="production", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where the bundle goes (default: diagnostics/ beside TRIPGEN_AUDIT_LOG).")
def diagnose(service: str | None, environment: str, out: Path | None) -> None:
    """Pods and their states, recent events, each pod's logs and previous logs, pod and node resource use, the app's
    actuator metrics and latency to PostgreSQL of SERVICE (default: all), printed as markdown and kept as a tar.gz
    bundle for 30 days. Reads the cluster and services of the worker's TRIPGEN_* settings."""
    rt = Runtime(Settings())
    try:
        services = select_services(rt.policy, [service] if service else None)
    except PlanError as err:
        raise click.BadParameter(str(err), param_hint="SERVICE") from None
    namespace = rt.policy.environments[environment].namespace
    diagnosis = rt.diagnoser.collect(namespace, services, datetime.now(timezone.utc))
    click.echo(diagnosis.markdown())
    click.echo(f"bundle: {diagnosis.write_bundle(out or rt.settings.diagnostics_dir())} (kept 30 days)")
