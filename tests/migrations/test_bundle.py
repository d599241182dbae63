"""Loading a tag's migrations: phases in file-name order, versions and checksums, stray entries refused."""

from __future__ import annotations

import pytest

from delivery.migrations.bundle import MigrationBundle, Phase
from tests.migrations.conftest import write
from tests.migrations.test_runner import V120


def test_phases_load_in_file_name_order_with_versions_and_checksums(tmp_path):
    root = write(tmp_path, "v1.2.0", {**V120, "expand/002_index.sql": "CREATE INDEX CONCURRENTLY i ON trips (user_id);\n"})
    bundle = MigrationBundle.load(root, "v1.2.0")
    assert [f.version for f in bundle.phases[Phase.EXPAND]] == ["v1.2.0/expand/001_add_score.sql", "v1.2.0/expand/002_index.sql"]
    assert [f.concurrent for f in bundle.phases[Phase.EXPAND]] == [False, True]
    assert len(bundle.files()) == 5 and len({f.checksum for f in bundle.files()}) == 5


def test_a_tag_without_migrations_is_an_empty_bundle(tmp_path):
    assert MigrationBundle.load(tmp_path, "v1.1.0").empty


@pytest.mark.parametrize("files, problem", [
    ({"expand/001_add.sql": "SELECT 1;"}, "expand has no down/ to undo it"),
    ({**V120, "upgrade/001.sql": "SELECT 1;"}, "upgrade: not a phase directory"),
    ({**V120, "backfill/notes.txt": "later"}, "notes.txt: not a .sql file"),
], ids=["expand without down", "unknown phase", "not sql"])
def test_a_malformed_directory_is_refused_naming_the_entry(tmp_path, files, problem):
    with pytest.raises(ValueError, match=problem):
        MigrationBundle.load(write(tmp_path, "v1.2.0", files), "v1.2.0")
