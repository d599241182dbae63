"""Redis with RDB + AOF: a backup taken with BGSAVE and copied restores every key on a new server, and only those."""

from __future__ import annotations

import shutil
from pathlib import Path

from delivery.dr.redis_backup import backup, backup_and_restore, restored_keys, running, write_keys


def test_a_restore_from_the_backup_has_every_key_written_before_it(tmp_path: Path) -> None:
    result = backup_and_restore(tmp_path, count=500)

    assert (result.keys_written, result.keys_restored, result.missing) == (500, 500, 0)
    assert result.seconds > 0
    assert (tmp_path / "backup" / "dump.rdb").stat().st_size > 0
    assert list((tmp_path / "backup" / "appendonlydir").glob("*.manifest"))


def test_the_restored_server_holds_the_backups_keys_not_later_ones(tmp_path: Path) -> None:
    with running(tmp_path / "live") as (live, client):
        before = write_keys(client, 200)
        backup(live, client, tmp_path / "backup")
        client.set("written-after-the-backup", "x")
    shutil.copytree(tmp_path / "backup", tmp_path / "restored")

    with running(tmp_path / "restored") as (_, client):
        assert restored_keys(client, before) == 200
        assert client.get("written-after-the-backup") is None
        assert client.config_get("appendonly") == {"appendonly": "yes"}


def test_a_server_started_without_the_backup_is_counted_as_missing_every_key(tmp_path: Path) -> None:
    with running(tmp_path / "empty") as (_, client):
        assert restored_keys(client, {f"trip:{n}": f"itinerary-{n}" for n in range(10)}) == 0
