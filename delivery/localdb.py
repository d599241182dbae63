"""A PostgreSQL server the project starts itself, with the machine's binaries, when no database is configured:
data, log and socket in a state dir, trust auth on 127.0.0.1 only."""

from __future__ import annotations

import glob
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

MAX_SOCKET_DIR = 90  # a Unix socket's path ("<dir>/.s.PGSQL.<port>") must stay under ~107 bytes


class LocalPostgresError(RuntimeError):
    """A server command failed; the message names the command and ends with the server log's tail."""


def bin_dir() -> Path:
    """The newest PostgreSQL server binaries: `pg_config --bindir`, else /usr/lib/postgresql/<version>/bin."""
    if shutil.which("pg_config"):
        found = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
        if (found / "initdb").exists():
            return found
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True)
    if not versions:
        raise LocalPostgresError("no PostgreSQL server binaries (initdb) found: install Debian's `postgresql` package")
    return Path(versions[0]).parent


class LocalPostgres:
    """One server per state dir: `start()` initialises it once and starts it (or finds it running), `stop()` stops it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.data, self.log = self.state_dir / "data", self.state_dir / "postgres.log"
        socket_dir = self.state_dir / "run"
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        self.socket_dir = socket_dir if len(str(socket_dir)) <= MAX_SOCKET_DIR else Path(f"/tmp/tripgen-pg-{digest}")
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
        self.bin = bin_dir()
        self.port: int | None = None

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Starts the server unless it already runs from this data dir; returns the admin DSN."""
        self._prepare()
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres", "-E", "UTF8", "--no-sync")
        if self._running():
            self.port = int((self.data / "postmaster.pid").read_text().splitlines()[3])
            return self.dsn("postgres")
        self.port = free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={shlex.quote(str(self.socket_dir))}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        return self.dsn("postgres")

    def stop(self) -> None:
        """Stops the server (fast shutdown: open sessions are ended); nothing to do when it is not running."""
        if self.data.exists() and self._running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str, fresh: bool = False) -> str:
        """Creates database `name` unless it exists (`fresh`: drops it first); returns its DSN."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            if fresh:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def dsn(self, database: str) -> str:
        """The DSN of `database` on the started server (no password: trust auth on 127.0.0.1)."""
        if self.port is None:
            raise LocalPostgresError(f"the PostgreSQL server in {self.state_dir} is not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def _prepare(self) -> None:
        """The data and socket dirs and the log file, owned by the user the server runs as."""
        for directory in (self.data, self.socket_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log.touch()
        if self.as_postgres:
            for path in (self.data, self.socket_dir, self.log):
                shutil.chown(path, "postgres", "postgres")
            if subprocess.run([*self.as_postgres, "test", "-w", str(self.data)], cwd="/").returncode:
                raise LocalPostgresError(f"the postgres user cannot reach {self.data}: "
                                         "make its parent directories traversable (chmod o+x) or choose another state dir")

    def _running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False) == 0

    def _run(self, program: str, *args: str, check: bool = True) -> int:
        """Runs a server binary as the server's user; a failure raises with its output and the log's tail when `check`."""
        done = subprocess.run([*self.as_postgres, self.bin / program, *args], capture_output=True, text=True, cwd=self.state_dir)
        if done.returncode and check:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise LocalPostgresError(f"`{shlex.join([program, *args])}` failed (exit {done.returncode}): "
                                     f"{(done.stderr or done.stdout).strip()}\n{self.log} ends with:\n{tail}")
        return done.returncode


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
