"""Redis (Debian's `redis-server`) with RDB snapshots and AOF (appendonly yes, appendfsync everysec) in a dir of its
own: write keys, back up (BGSAVE, then copy the RDB and the AOF dir), kill the server, start a new one from the copy
and check that every key written before the backup is there."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from delivery.localdb import free_port

RDB, AOF_DIR = "dump.rdb", "appendonlydir"
POLL = 0.02


class RedisBackupError(RuntimeError):
    """The server did not start, the snapshot failed, or the restored server lacks keys; the message says which."""


@dataclass(frozen=True)
class RedisRestore:
    """What the restore check found: keys written before the backup, how many the restored server has, and how long
    it took from starting the new server on the copy until every key was read back."""

    keys_written: int
    keys_restored: int
    seconds: float

    @property
    def missing(self) -> int:
        return self.keys_written - self.keys_restored


class RedisServer:
    """One `redis-server` on 127.0.0.1 with its config, data and log in `state_dir`; killed, never shut down cleanly."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir).resolve()
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> redis.Redis:
        """Starts the server on whatever RDB and AOF its dir holds; returns a client once it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\ndbfilename {RDB}\nappendonly yes\n"
                        f"appendfsync everysec\nappenddirname {AOF_DIR}\nsave 900 1 300 10 60 10000\n"
                        f"logfile {self.dir / 'redis.log'}\ndaemonize no\n")
        self.process = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, decode_responses=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping() and client.info("persistence").get("loading") == 0:
                    return client
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RedisBackupError(f"redis-server on port {self.port} did not start: {self.log_tail()}")
            time.sleep(POLL)

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits for the process to be gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self) -> str:
        log = self.dir / "redis.log"
        return log.read_text(errors="replace")[-1500:] if log.exists() else "no log"


def backup(server: RedisServer, client: redis.Redis, dest: Path, timeout: float = 60) -> None:
    """BGSAVE, wait until INFO persistence shows that snapshot done (rdb_saves grew, no save or AOF rewrite running,
    status ok), then copy the RDB and the AOF dir to `dest`."""
    before = client.info("persistence")["rdb_saves"]
    client.bgsave()
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if info["rdb_saves"] > before and not info["rdb_bgsave_in_progress"] and not info["aof_rewrite_in_progress"]:
            break
        if time.monotonic() > deadline:
            raise RedisBackupError(f"BGSAVE did not finish within {timeout:g}s")
        time.sleep(POLL)
    if info["rdb_last_bgsave_status"] != "ok":
        raise RedisBackupError(f"BGSAVE failed ({info['rdb_last_bgsave_status']}): {server.log_tail()}")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(server.dir / RDB, dest / RDB)
    shutil.copytree(server.dir / AOF_DIR, dest / AOF_DIR)


def write_keys(client: redis.Redis, count: int) -> dict[str, str]:
    """`count` keys `trip:<n>` with their values, written in one pipeline; returns what was written."""
    keys = {f"trip:{n}": f"itinerary-{n}" for n in range(count)}
    with client.pipeline(transaction=False) as pipe:
        for key, value in keys.items():
            pipe.set(key, value)
        pipe.execute()
    return keys


def restored_keys(client: redis.Redis, keys: dict[str, str]) -> int:
    """How many of `keys` the server holds with their written value."""
    names = list(keys)
    values = client.mget(names) if names else []
    return sum(1 for name, value in zip(names, values) if value == keys[name])


@contextmanager
def running(state_dir: Path) -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A server on whatever `state_dir` holds, and a client of it; killed on the way out."""
    server = RedisServer(state_dir)
    try:
        yield server, server.start()
    finally:
        server.kill()


def backup_and_restore(state_dir: Path, count: int = 1000) -> RedisRestore:
    """The whole check: a server in `state_dir/live` takes `count` keys and is backed up to `state_dir/backup`, then
    killed; a new server in `state_dir/restored` starts from a copy of the backup and is checked key by key."""
    with running(state_dir / "live") as (live, client):
        keys = write_keys(client, count)
        backup(live, client, state_dir / "backup")
    shutil.copytree(state_dir / "backup", state_dir / "restored")
    started = time.monotonic()
    with running(state_dir / "restored") as (_, client):
        found = restored_keys(client, keys)
        return RedisRestore(keys_written=len(keys), keys_restored=found, seconds=time.monotonic() - started)
