"""`tripgen-release dr-drill`: run the DR drill on the local setup (two sandbox regions behind the Traffic Manager
stand-in unless --no-regions) and print RTO, RPO and the database failover time against the policy; exit 0 within
its limits, 1 outside them or when the drill could not measure."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from delivery.dr.drill import FAILURES, run_drill
from delivery.dr.report import render_table
from delivery.policy.loader import PolicyError, load_policy


@click.command("dr-drill")
@click.option("--policy", "policy_file", envvar="TRIPGEN_POLICY", default="policies/tripgen.yaml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="The release policy: its disaster_recovery limits.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(tempfile.gettempdir()),
              show_default=True, help="Where the drill's servers live while it runs (a new dir inside, removed afterwards).")
@click.option("--redis-keys", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Keys written to Redis before its backup, each checked after the restore.")
@click.option("--regions/--no-regions", default=True, show_default=True,
              help="Run korea-central and korea-south sandboxes behind the Traffic Manager stand-in and measure RTO "
                   "until korea-south serves; --no-regions ends RTO at the promoted database answering healthy.")
def dr_drill(policy_file: str, work_dir: Path, redis_keys: int, regions: bool) -> None:
    """Kill a PostgreSQL primary under load with its region, let the watchdog promote its streaming standby, switch
    traffic to the DR region, restore Redis from its RDB + AOF backup, and print RTO, RPO and the failover time
    against the policy (R-DR-1, R-DR-2)."""
    try:
        policy = load_policy(policy_file)
    except PolicyError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)
    try:
        report = run_drill(work_dir, policy, Path(policy_file) if regions else None, redis_keys)
    except FAILURES as err:
        click.echo(f"dr-drill failed: {err}", err=True)
        sys.exit(1)
    click.echo(render_table(report))
    sys.exit(0 if report.ok else 1)
