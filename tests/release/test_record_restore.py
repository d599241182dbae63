"""The release record and the one restore path against the sandbox cluster, without a Prefect server."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from delivery.kube import Deployments, Routing, connect
from delivery.kube.configmaps import JsonConfigMaps
from delivery.policy.loader import load_policy
from delivery.release.bluegreen import BlueGreen
from delivery.release.canary import CanaryRollout
from delivery.release.record import RecordError, ReleaseRecords, ServiceRecord, new_record, record_name
from delivery.migrations.runner import Applied
from delivery.release.restore import Restorer
from delivery.kube.diagnostics import Diagnostics
from tests.release.conftest import set_fault

BASE = "acrtrpgenprod.azurecr.io/{}:v1.0.0"
NEW = "acrtrpgenprod.azurecr.io/{}@sha256:" + "1" * 64


@pytest.fixture
def parts(sandbox, policy_file):
    conn = connect(os.environ["TRIPGEN_KUBECONFIG"])
    policy = load_policy(policy_file)
    deployments, routing = Deployments(conn), Routing(conn)
    records = ReleaseRecords(JsonConfigMaps(conn, "production"))
    blue_green = BlueGreen(policy, deployments, routing)
    canary = CanaryRollout(policy, deployments, routing, Diagnostics(conn))
    kept = []
    restorer = Restorer(records, blue_green, canary, deployments, 30, keep_canary_logs=lambda tag, s: kept.append(s) or "kept", attempts=2)
    return records, blue_green, restorer


def a_record(tag: str, run: str, services: list[str]):
    entries = [ServiceRecord(service=s, previous_color="blue", previous_image=BASE.format(s), new_image=NEW.format(s)) for s in services]
    return new_record(record_name(tag, run), tag, "blue-green", run, "demo-dev", entries)


def kubectl(*args: str) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", os.environ["TRIPGEN_KUBECONFIG"], *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_record_is_a_configmap_kubectl_reads_and_blocks_other_releases_until_finished(parts):
    records, _, _ = parts
    first = records.open(a_record("v1.3.0", "aaaaaaaa-0000", ["user-service"]))
    assert records.open(a_record("v1.3.0", "aaaaaaaa-0000", ["user-service"])) == first  # the same run: its own record
    listed = kubectl("get", "configmap", "-n", "production", "-l", "tripgen.io/record-state=open", "-o", "name")
    assert listed.split() == [f"configmap/{first.name}"]
    document = json.loads(kubectl("get", "configmap", "-n", "production", first.name, "-o", "jsonpath={.data.record\\.json}"))
    assert document["services"]["user-service"]["previous_image"] == BASE.format("user-service")
    with pytest.raises(RecordError, match=rf"{first.name} .* is unfinished: run `tripgen-release recover v1.3.0`"):
        records.open(a_record("v1.4.0", "bbbbbbbb-0000", ["user-service"]))
    records.finish(first.name, "released", "done")
    assert records.open(a_record("v1.4.0", "bbbbbbbb-0000", ["user-service"])).state == "open"


def test_restore_switches_back_last_changed_first_and_is_idempotent(parts):
    records, blue_green, restorer = parts
    record = records.open(a_record("v1.3.0", "cccccccc-0000", ["user-service", "location-service", "trip-service"]))
    for service in ("location-service", "user-service"):  # trip-service only planned: never touched
        blue_green.deploy_into(service, "green", BASE.format(service))
        records.mark(record.name, service, "switching", new_color="green")
        blue_green.switch(service, "green")
        records.mark(record.name, service, "switched")
    report = restorer.restore(records.get(record.name))
    assert report.complete and [s.service for s in report.services] == ["user-service", "location-service"]
    assert all(blue_green.live_color(s) == "blue" for s in ("user-service", "location-service", "trip-service"))
    after = records.get(record.name)
    assert after.state == "restored" and after.services["user-service"].phase == "restored"
    assert restorer.restore(after).services == ()  # nothing left to restore


def test_a_service_that_cannot_be_restored_is_named_with_where_it_is_left(parts, sandbox):
    records, blue_green, restorer = parts
    record = records.open(a_record("v1.3.0", "dddddddd-0000", ["user-service", "location-service"]))
    for service in ("user-service", "location-service"):
        blue_green.deploy_into(service, "green", BASE.format(service))
        records.mark(record.name, service, "switched", new_color="green")
        blue_green.switch(service, "green")
    set_fault(sandbox, refusals=[{"method": "PATCH", "plural": "services", "name": "location-service"}])
    report = restorer.restore(records.get(record.name))
    assert [s.service for s in report.stranded] == ["location-service"]
    assert "left on green" in report.stranded[0].action and "403" in report.stranded[0].action
    assert blue_green.live_color("user-service") == "blue"  # the others are still restored
    assert records.get(record.name).state == "stranded" and records.unfinished()[0].name == record.name
    set_fault(sandbox, refusals=[])
    assert restorer.restore(records.get(record.name)).complete  # recover again once the cluster lets us
    assert blue_green.live_color("location-service") == "blue"


def with_down(parts, calls: list[str]) -> Restorer:
    """The parts' restorer, with a `down` that notes where user-service's traffic is when it runs."""
    records, blue_green, restorer = parts

    def revert(tag: str) -> list[Applied]:
        calls.append(f"{tag} down while user-service is on {blue_green.live_color('user-service')}")
        return [Applied(f"{tag}/down/001_drop_score.sql", 0.01)]

    return Restorer(records, blue_green, restorer.canary, restorer.deployments, 30, restorer.keep_canary_logs, attempts=2,
                    revert_migrations=revert)


def test_down_runs_once_every_service_is_back_and_is_recorded(parts):
    records, blue_green, _ = parts
    calls: list[str] = []
    record = records.open(a_record("v1.3.0", "eeeeeeee-0000", ["user-service"]))
    records.mark_database(record.name, "expanding")
    records.mark_database(record.name, "expanded", applied=["v1.3.0/expand/001_add.sql"])
    blue_green.deploy_into("user-service", "green", BASE.format("user-service"))
    records.mark(record.name, "user-service", "switched", new_color="green")
    blue_green.switch("user-service", "green")
    report = with_down(parts, calls).restore(records.get(record.name))
    assert calls == ["v1.3.0 down while user-service is on blue"]
    assert report.complete and [a.version for a in report.database.reverted] == ["v1.3.0/down/001_drop_score.sql"]
    after = records.get(record.name)
    assert after.state == "restored" and after.database.phase == "reverted" and "database: down ran 1 file(s)" in report.summary()
    assert with_down(parts, calls).restore(after).database.reverted == () and len(calls) == 1  # reverted: never again


def test_down_runs_when_the_release_failed_before_traffic_moved(parts):
    records, _, _ = parts
    calls: list[str] = []
    record = records.open(a_record("v1.3.0", "ffffffff-0000", ["user-service"]))
    records.mark_database(record.name, "expanded", applied=["v1.3.0/expand/001_add.sql"])
    report = with_down(parts, calls).restore(records.get(record.name))
    assert report.services == () and len(report.database.reverted) == 1 and records.get(record.name).state == "restored"


def test_down_never_runs_while_a_service_may_still_serve_the_new_version(parts, sandbox):
    records, blue_green, _ = parts
    calls: list[str] = []
    record = records.open(a_record("v1.3.0", "abababab-0000", ["user-service"]))
    records.mark_database(record.name, "backfilled")
    blue_green.deploy_into("user-service", "green", BASE.format("user-service"))
    records.mark(record.name, "user-service", "switched", new_color="green")
    blue_green.switch("user-service", "green")
    set_fault(sandbox, refusals=[{"method": "PATCH", "plural": "services", "name": "user-service"}])
    report = with_down(parts, calls).restore(records.get(record.name))
    assert calls == [] and not report.complete
    assert report.left()[-1] == "database: NOT restored: down not run: user-service may still serve v1.3.0, which needs its expand"
    assert records.get(record.name).state == "stranded" and records.get(record.name).database.phase == "backfilled"
