"""`tripgen-release dr-drill` on the local setup: the table and exit 0 within the limits, 1 outside, 2 on bad usage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from delivery.cli import cli
from tests.conftest import REPO
from tests.postgres import server_state_dir

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)


def dr_drill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "delivery.cli", "dr-drill", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_the_drill_prints_rto_through_the_traffic_switch_rpo_and_the_failover_time_and_exits_0() -> None:
    with server_state_dir() as work:
        done = dr_drill("--policy", str(REPO / "policies" / "tripgen.yaml"), "--work-dir", str(work), "--redis-keys", "200")
        assert list(work.iterdir()) == []  # the drill's servers and files are gone
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["measure", "measured", "policy", "within"]
    for measure, limit in (("RTO (traffic switched to korea-south)", "≤ 30m"), ("RPO", "≤ 15m"), ("database failover", "< 1m"),
                           ("Redis restore (RDB + AOF)", "every key")):
        [row] = [line for line in lines if line.startswith(measure + " ")]
        assert limit in row and row.endswith("ok"), row
    assert "200/200 keys" in done.stdout and lines[-1] == "within the policy's limits"


def in_process(*args: str) -> tuple[int, str]:
    """The command run in this process (no interpreter start-up): its exit code and everything it printed."""
    result = CliRunner().invoke(cli, ["dr-drill", *args])
    return result.exit_code, result.output


def test_a_failover_slower_than_the_policy_exits_1_and_no_regions_ends_rto_at_the_database(tmp_path: Path) -> None:
    policy = tmp_path / "strict.yaml"
    policy.write_text("disaster_recovery: {database_failover: 1ms}\n")
    with server_state_dir() as work:
        code, output = in_process("--policy", str(policy), "--work-dir", str(work), "--redis-keys", "10", "--no-regions")
    assert code == 1, output
    assert "OUTSIDE the policy's limits: database failover" in output
    assert "RTO (database healthy) " in output


def test_bad_usage_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("disaster_recovery: {rto: soon}\n")
    for args, message in ((["--no-such-option"], "No such option '--no-such-option'"),
                          (["--redis-keys", "0"], "Invalid value for '--redis-keys'"),
                          (["--policy", str(tmp_path / "absent.yaml")], "does not exist"),
                          (["--policy", str(broken)], "disaster_recovery.rto")):
        code, output = in_process(*args)
        assert code == 2 and message in output, (args, output)
