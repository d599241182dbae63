"""The demo's runbook line: production task runs in start order, repeats folded, empty migration phases left out."""

from __future__ import annotations

from delivery.release.timeline import runbook_steps


def run(name: str, second: int) -> dict:
    return {"name": name, "start_time": f"2026-12-05T10:00:{second:02d}Z"}


def test_the_steps_in_start_order_with_repeats_folded():
    runs = [run("watch user-service (production)", 9), run("migrations v1.2.0: expand", 1), run("deploy user-service idle color", 2),
            run("deploy trip-service idle color", 3), run("roll out user-service to staging", 0), run("switch user-service to green", 4),
            run("migrations v1.2.0: backfill", 8), run("retire user-service-blue", 10), run("migrations v1.2.0: contract", 11),
            {"name": "audit traffic_switched", "start_time": None}]
    assert runbook_steps(runs, {"expand", "backfill", "contract"}) == ["expand", "deploy", "switch", "backfill", "watch", "retire", "contract"]


def test_a_phase_that_ran_no_file_is_left_out_and_a_restore_shows():
    runs = [run("migrations v1.3.0: expand", 1), run("deploy user-service idle color", 2), run("switch user-service to green", 3),
            run("migrations v1.3.0: backfill", 4), run("watch user-service (production)", 5), run("restore production (release-v1)", 6)]
    assert runbook_steps(runs, {"expand"}) == ["expand", "deploy", "switch", "watch", "restore"]
