"""The release's `database migrations` gate (R-DB-3): a blocking migration stops the release before staging."""

from __future__ import annotations

from tests.migrations.conftest import write
from tests.migrations.test_runner import V120
from tests.release.conftest import audit_events, live, release_run, staging_image

SERVICE = "user-service"
BASE_IMAGE = f"acrtrpgenprod.azurecr.io/{SERVICE}:v1.0.0"


def test_a_drop_column_in_expand_stops_the_release_before_staging(prefect_api, sandbox, cluster, tmp_path):
    write(tmp_path / "reports-root" / "migrations", "v1.2.0",
          {**V120, "expand/001_add_score.sql": "ALTER TABLE trips DROP COLUMN destination;\n"})
    state = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev").join(60)
    assert state.is_failed() and "stopped by quality gates" in state.message, state.message
    assert "v1.2.0/expand/001_add_score.sql:1: ban-drop-column" in state.message, state.message
    assert staging_image(cluster, SERVICE) == BASE_IMAGE
    assert live(cluster, SERVICE) == ("blue", BASE_IMAGE)
    assert "gate_failed" in audit_events(tmp_path)
