"""Two regions (R-DR-1, R-DR-3): after the primary's watch passed, the same release (same digests, the same gates and
approvals) reaches each DR region, recorded in that region's cluster; the restore path then covers every region."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import get_run_logger

from delivery.release.restore import RestoreReport
from delivery.release.runtime import in_region, runtime
from delivery.release.state import ProductionOutcome, ReleasePlan
from flows.canary import release_canary
from flows.production import release_blue_green
from tasks.bluegreen import retire_old_color
from tasks.release_record import close_release_record, open_release_record, restore_production


@dataclass
class Reached:
    """Where a release changed production: the primary's record first, then each DR region's (record, outcome)."""

    primary: str
    regions: dict[str, tuple[str, ProductionOutcome]] = field(default_factory=dict)


def release_in_dr_regions(reached: Reached, plan: ReleasePlan, strategy: str, initiator: str, lease) -> None:
    """Each DR region in turn: its own record (kept before anything moves there), then the strategy's steps."""
    for region in runtime().policy.dr_regions():
        get_run_logger().info("the primary region passed its watch: releasing %s to region %s", plan.tag, region.name)
        with in_region(region.name):
            record, outcome = open_release_record(plan, strategy, initiator, lease), ProductionOutcome()
            reached.regions[region.name] = (record, outcome)  # before anything moves there: the restore finds it
            release = release_canary if strategy == "canary" else release_blue_green
            release(plan, record, initiator, outcome)


def restore_every_region(reached: Reached, why: str, initiator: str) -> tuple[RestoreReport, str]:
    """The one restore path in every region, the last reached first; a DR region that cannot be restored is said and
    never keeps the primary from being restored. Returns the primary's report and the whole summary."""
    lines = []
    for region, (record, _) in reversed(reached.regions.items()):
        try:
            with in_region(region):
                lines.append(f"region {region}: {restore_production(record, why, initiator).summary()}")
        except Exception as error:  # noqa: BLE001 - the primary is restored whatever happened in a DR region
            lines.append(f"region {region}: NOT restored ({type(error).__name__}: {error})")
    primary = restore_production(reached.primary, why, initiator)
    return primary, "; ".join([primary.summary(), *lines])


def close_dr_regions(reached: Reached, retire: bool) -> None:
    """Close each DR region's record as released and, for blue-green, retire its old colors."""
    for region, (record, outcome) in reached.regions.items():
        with in_region(region):
            close_release_record(record, "released", "every service released and watched")
            for switch in outcome.switches if retire else []:
                retire_old_color(switch.service, switch.from_color, record)
