"""The DR drill as a flow (R-DR-1, R-DR-2): delivery.dr's drill on the worker's machine, its numbers as a markdown
artifact and a `dr_drill_completed` audit event; the run fails when a number is outside the policy's limits."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from delivery.dr.drill import run_drill
from delivery.dr.report import DrillReport, render_markdown, render_table
from delivery.settings import Settings
from tasks.records import audit


class DrillOutsideLimits(RuntimeError):
    """The drill measured, and at least one number is outside the policy's disaster_recovery limits."""


@task(name="dr drill")
def drill(work_dir: str, regions: bool) -> DrillReport:
    """PostgreSQL failover under load (with `regions`, through the two sandbox regions and the Traffic Manager
    stand-in) and the Redis restore, measured against the worker's policy."""
    settings = Settings()
    return run_drill(Path(work_dir or tempfile.gettempdir()), settings.load_policy(), settings.policy if regions else None)


@flow(name="dr-drill", log_prints=True)
def dr_drill(work_dir: str = "", regions: bool = True, initiator: str = "dr-drill") -> dict:
    """Kill a PostgreSQL primary under load with its region, let the watchdog promote its streaming standby, switch
    traffic to the DR region, restore Redis from its RDB + AOF backup; publish RTO, RPO and the failover time against
    the policy and audit them.

    Args:
        work_dir: Where the drill's servers live while it runs (empty: the system's temp dir).
        regions: Two sandbox regions behind the Traffic Manager stand-in, RTO until korea-south serves (False: RTO
            ends at the promoted database answering healthy).
        initiator: Who runs the drill, for the audit log.
    """
    report = drill(work_dir, regions)
    create_markdown_artifact(render_markdown(report), key="dr-drill", description="DR drill: RTO, RPO, database failover")
    audit(event="dr_drill_completed", actor=initiator, release="dr-drill", details=report.details())
    print(render_table(report))
    if not report.ok:
        raise DrillOutsideLimits("the DR drill is outside the policy's limits: "
                                 + ", ".join(row.measure for row in report.verdicts() if not row.ok))
    return report.details()
