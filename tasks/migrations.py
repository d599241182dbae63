"""The release's database migrations (R-DB): each phase recorded in the release record first, then applied to
the production database, each file audited `migration_applied` with its version and duration."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run

from delivery.migrations.bundle import MigrationFile, Phase
from delivery.migrations.release import ReleaseMigrations
from delivery.migrations.runner import percent_done
from delivery.release.retrying import LOCAL_STEP
from delivery.release.runtime import runtime
from tasks.records import artifact_key

RUNNING = {Phase.EXPAND: "expanding", Phase.BACKFILL: "backfilling", Phase.CONTRACT: "contracting"}
DONE = {Phase.EXPAND: "expanded", Phase.BACKFILL: "backfilled", Phase.CONTRACT: "contracted"}


@task(name="database migrations", task_run_name="migrations {tag}: {phase.value}", **LOCAL_STEP)
def migrate(record: str, tag: str, phase: Phase, initiator: str, release: str | None = None) -> list[str]:
    """Apply the tag's `phase` to the production database (files already applied are skipped); returns the versions run.
    `release`: the release running it, when that is another tag's (an earlier tag's pending contract).

    Not retried: a failed file rolled its own transaction back, and the release's restore runs `down`.
    """
    rt, log = runtime(), get_run_logger()
    migrations = ReleaseMigrations(rt.policy.quality_gates.database_migrations, rt.reports, log=log.info)
    if not migrations.bundle(tag).phases[phase]:
        log.info("%s ships no %s migrations", tag, phase.value)
        return []
    rt.records.mark_database(record, RUNNING[phase], detail=f"{tag} {phase.value}")
    progress = BackfillProgress(tag) if phase is Phase.BACKFILL else None
    applied = migrations.apply(tag, phase, progress)
    rt.records.mark_database(record, DONE[phase], applied=[a.version for a in applied], detail=f"{tag} {phase.value}")
    for done in applied:
        rt.audit.append("migration_applied", initiator, release or tag, flow_run_id=str(flow_run.id), phase=phase.value,
                        record=record, **done.audited())
    return [a.version for a in applied]


@task(name="pending contracts", task_run_name="pending contracts before {tag}", **LOCAL_STEP)
def pending_contracts(tag: str) -> list[str]:
    """Earlier tags whose contract has not run yet (the policy's next_release, or a contract that failed)."""
    rt = runtime()
    return ReleaseMigrations(rt.policy.quality_gates.database_migrations, rt.reports).pending_contracts(tag)


class BackfillProgress:
    """A progress artifact per backfill file (rows changed of its `-- total:`), and a log line per batch."""

    def __init__(self, tag: str) -> None:
        self.tag, self.artifacts = tag, {}
        self.log = get_run_logger()

    def __call__(self, file: MigrationFile, batches: int, rows: int, total: int | None) -> None:
        percent = percent_done(rows, total)
        self.log.info("backfill %s: batch %d, %d rows%s", file.version, batches, rows,
                      f" of {total} ({percent:.0f}%)" if percent is not None else "")
        if percent is None:
            return
        if file.version not in self.artifacts:
            key = artifact_key(f"backfill-{self.tag}-{file.name}")
            self.artifacts[file.version] = create_progress_artifact(percent, key=key, description=f"backfill {file.version}: rows changed (%)")
        else:
            update_progress_artifact(self.artifacts[file.version], percent)
