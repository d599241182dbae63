"""A release's migrations on disk: `<root>/<tag>/<phase>/*.sql`, run in file-name order within each phase."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import yaml

NEEDS_FILE = "needs.yaml"


class Phase(str, Enum):
    """When a phase runs: expand before the idle color deploys, backfill after the switch, contract after the
    watch passed and the old color retired; down undoes expand when the release is rolled back before contract."""

    EXPAND = "expand"
    BACKFILL = "backfill"
    CONTRACT = "contract"
    DOWN = "down"


@dataclass(frozen=True)
class MigrationFile:
    """One SQL file of a phase; `version` (tag/phase/name) identifies it in the ledger, `checksum` its content."""

    tag: str
    phase: Phase
    path: Path
    sql: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def version(self) -> str:
        return f"{self.tag}/{self.phase.value}/{self.name}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def total_query(self) -> str | None:
        """A backfill's `-- total: SELECT count(*) ...` line: how many rows it has to change, for its progress."""
        lines = [line.strip() for line in self.sql.splitlines()]
        return next((line.split(":", 1)[1].strip().rstrip(";") for line in lines if line.lower().startswith("-- total:")), None)

    @property
    def concurrent(self) -> bool:
        """CONCURRENTLY cannot run inside a transaction block: such a file runs in autocommit."""
        return "concurrently" in self.sql.lower()


@dataclass(frozen=True)
class MigrationBundle:
    """The migrations of one tag by phase (each phase possibly empty), and the tables and columns the tag's
    version reads and writes (`needs.yaml`: `table: [column, ...]`), which must hold after each phase it runs on."""

    tag: str
    directory: Path
    phases: dict[Phase, tuple[MigrationFile, ...]]
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, tag: str) -> MigrationBundle:
        """`root/tag`'s phase directories; a tag without a directory has no migrations. ValueError names a stray
        entry (a file outside a phase, a phase directory that is not one, a file that is not .sql)."""
        directory = root / tag
        phases: dict[Phase, tuple[MigrationFile, ...]] = {phase: () for phase in Phase}
        if not directory.is_dir():
            return cls(tag, directory, phases)
        known = {phase.value: phase for phase in Phase}
        problems = [f"{entry}: not a phase directory ({', '.join(known)}) or {NEEDS_FILE}"
                    for entry in sorted(directory.iterdir())
                    if (entry.name not in known or not entry.is_dir()) and not (entry.name == NEEDS_FILE and entry.is_file())]
        needs, problem = _needs(directory / NEEDS_FILE)
        problems += [problem] if problem else []
        for name, phase in known.items():
            folder = directory / name
            if not folder.is_dir():
                continue
            files = sorted(folder.iterdir())
            problems += [f"{f}: not a .sql file" for f in files if f.suffix != ".sql" or not f.is_file()]
            phases[phase] = tuple(MigrationFile(tag, phase, f, f.read_text()) for f in files if f.suffix == ".sql" and f.is_file())
        if problems:
            raise ValueError("; ".join(problems))
        if phases[Phase.EXPAND] and not phases[Phase.DOWN]:
            raise ValueError(f"{directory / 'expand'}: expand has no down/ to undo it when the release is rolled back")
        return cls(tag, directory, phases, needs)

    def files(self) -> tuple[MigrationFile, ...]:
        return tuple(f for phase in Phase for f in self.phases[phase])

    @property
    def empty(self) -> bool:
        return not self.files()


def _needs(path: Path) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """The tables and columns `needs.yaml` lists (none without the file), or the problem that makes it unreadable."""
    if not path.is_file():
        return {}, None
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        return {}, f"{path}: not YAML: {err}"
    if not isinstance(loaded, dict) or not all(
            isinstance(t, str) and isinstance(c, list) and c and all(isinstance(x, str) for x in c) for t, c in loaded.items()):
        return {}, f"{path}: must map each table to a list of its columns (trips: [id, destination])"
    return {table: tuple(columns) for table, columns in loaded.items()}, None
