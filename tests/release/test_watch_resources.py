"""R-MON in the watch (issue 15 item 2): a leaky version's pods go over their memory limit and restart; the watch
rolls it back, its rows showing each pod's CPU and memory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.conftest import REPO
from tests.release.conftest import live, release_run
from tests.release.test_canary import approve_twice

SERVICE = "user-service"


def test_a_leaky_version_fails_the_watch_on_memory_with_cpu_and_memory_in_its_rows(prefect_api, sandbox, cluster):
    shutil.copytree(REPO / "reports" / "v1.2.0", Path(os.environ["TRIPGEN_REPORTS"]) / "reports" / "v1.3.0-leaky")
    run = release_run("v1.3.0-leaky", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(180)
    assert state.is_failed() and "watch failed" in state.message, state.message
    assert "over its limit" in state.message or "restarted" in state.message, state.message
    assert live(cluster, SERVICE)[0] == "blue"  # restored
    table = next(a for a in prefect_api.artifacts(prefect_api.flow_run(run)["id"])
                 if a["key"] == f"watch-production-{SERVICE}" and a["type"] == "table")
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    assert rows and all(row["cpu"].endswith("m") and "Mi/" in row["memory"] for row in rows), rows
    assert rows[-1]["verdict"] == "rollback"
