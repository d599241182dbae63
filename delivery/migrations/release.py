"""A release's migrations on the production database: the tag's bundle, applied phase by phase and reverted
by the restore. The DSN comes from the gate's environment variable or Prefect Secret block, and goes to psycopg only."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from delivery.migrations.bundle import MigrationBundle, Phase
from delivery.migrations.gate import bundle_of, limits_of, pending_contracts
from delivery.migrations.runner import Applied, MigrationError, MigrationRunner, Progress
from delivery.notify.credentials import PrefectSecrets
from delivery.policy.models import DatabaseMigrationsGate
from delivery.reports.source import ReportSource


def database_dsn(gate: DatabaseMigrationsGate, secrets: Callable[[str], str | None] | None = None) -> str | None:
    """The migration database's DSN: the environment variable the gate names, else its Prefect Secret block."""
    if dsn := os.environ.get(gate.dsn_env):
        return dsn
    if not gate.dsn_secret_block:
        return None
    return (secrets or PrefectSecrets())(gate.dsn_secret_block)


class ReleaseMigrations:
    """The migrations of each tag under `root` (the gate's `report` template), run on the production database."""

    def __init__(self, gate: DatabaseMigrationsGate, root: Path | ReportSource, log: Callable[[str], None] = print) -> None:
        self.gate, self.root, self.log = gate, root, log

    def bundle(self, tag: str) -> MigrationBundle:
        return bundle_of(self.gate, self.root, tag)

    def pending_contracts(self, tag: str) -> list[str]:
        """Earlier tags whose contract has not run (the policy said next_release, or it failed): run before `tag`'s expand."""
        dsn = database_dsn(self.gate)
        return [b.tag for b in pending_contracts(self.gate, self.root, dsn, tag)] if dsn else []

    def apply(self, tag: str, phase: Phase, progress: Progress | None = None) -> list[Applied]:
        """Apply the tag's `phase` (files already in the ledger are skipped); nothing for a tag without migrations."""
        bundle = self.bundle(tag)
        return self._runner(bundle).run(bundle, phase, progress) if bundle.phases[phase] else []

    def revert(self, tag: str) -> list[Applied]:
        """Run the tag's `down` when its expand is applied and its contract is not."""
        bundle = self.bundle(tag)
        return self._runner(bundle).revert(bundle) if bundle.phases[Phase.EXPAND] else []

    def _runner(self, bundle: MigrationBundle) -> MigrationRunner:
        dsn = database_dsn(self.gate)
        if dsn is None:
            raise MigrationError(f"{bundle.directory}: no database to migrate: set {self.gate.dsn_env}"
                                 + (f" or the Prefect Secret block {self.gate.dsn_secret_block!r}" if self.gate.dsn_secret_block else ""))
        return MigrationRunner(dsn, limits_of(self.gate), self.log)
