"""The audit log's hash chain, and `audit verify` naming the first broken line."""

import json
import threading

import pytest
from click.testing import CliRunner

from delivery.audit import GENESIS, AuditLog, verify
from delivery.cli import cli


@pytest.fixture
def log(tmp_path):
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    log.append("deployment_initiated", "release-bot", "v1.2.0", services=["trip-service"])
    log.append("approval_granted", "demo-lead", "v1.2.0", comment="ok")
    log.append("approval_granted", "demo-ops", "v1.2.0", comment="ok")
    log.append("traffic_switched", "release-bot", "v1.2.0", service="trip-service", to="green", seconds=0.4)
    return log


def test_records_chain_by_hash(log):
    records = log.records()
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert records[0]["prev_sha256"] == GENESIS
    assert all(b["prev_sha256"] == a["sha256"] for a, b in zip(records, records[1:]))
    assert verify(log.path).intact and verify(log.path).records == 4


def test_one_changed_byte_is_found_on_its_line(log):
    data = bytearray(log.path.read_bytes())
    third_line_start = data.index(b"\n", data.index(b"\n") + 1) + 1
    position = data.index(b"demo-ops", third_line_start)
    data[position] = ord("x")  # demo-ops -> xemo-ops on line 3
    log.path.write_bytes(bytes(data))
    result = verify(log.path)
    assert not result.intact and result.broken_line == 3 and "changed" in result.problem


def test_the_last_line_is_protected_too(log):
    lines = log.path.read_text().splitlines()
    record = json.loads(lines[-1])
    record["details"]["to"] = "blue"
    lines[-1] = json.dumps(record, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    assert verify(log.path).broken_line == 4


def test_a_removed_line_breaks_the_link(log):
    lines = log.path.read_text().splitlines()
    del lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    result = verify(log.path)
    assert result.broken_line == 2 and "removed" in result.problem


def test_unknown_events_are_refused(log):
    with pytest.raises(ValueError, match="unknown audit event"):
        log.append("coffee_break", "someone", "v1.2.0")


def test_concurrent_writers_keep_one_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    threads = [threading.Thread(target=lambda i=i: log.append("approval_granted", f"a{i}", "v1")) for i in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert verify(log.path).records == 20 and sorted(r["seq"] for r in log.records()) == list(range(1, 21))


def test_cli_verify(log):
    ok = CliRunner().invoke(cli, ["audit", "verify", str(log.path)])
    assert ok.exit_code == 0 and "4 records, hash chain intact" in ok.output
    log.path.write_text(log.path.read_text().replace("demo-lead", "demo-leaf"))
    bad = CliRunner().invoke(cli, ["audit", "verify", str(log.path)])
    assert bad.exit_code == 1 and f"{log.path}:2:" in bad.output
