"""R-ALERT's escalation after the run: open alerts from the alert log, PagerDuty's state (respx), a simulated clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx
import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from pydantic import SecretStr

from delivery.notify import Delivery, Dispatcher
from delivery.notify.alert_log import AlertLog
from delivery.notify.escalation import escalate_open_alerts
from delivery.notify.pagerduty import REST_ACCEPT, REST_URL, PagerDutyIncidents
from flows.escalate import escalate_alerts
from tests.conftest import REPO
from tests.notify.test_routing import CONTACTS, Recording

API_TOKEN = "pdRestToken1234"
INCIDENTS_URL = f"{REST_URL}/incidents"
SMS_URL = "https://sms.tripgen.com/v1/messages"


def incidents_body(key: str, *statuses: str) -> dict:
    """A `GET /incidents` page as REST API v2 documents it."""
    incidents = [
        {
            "id": f"PT4KHL{number}",
            "type": "incident",
            "summary": f"[#{1234 + number}] Error rate above 5% after the switch (release v1.3.0)",
            "self": f"https://api.pagerduty.com/incidents/PT4KHL{number}",
            "html_url": f"https://tripgen.pagerduty.com/incidents/PT4KHL{number}",
            "incident_number": 1234 + number,
            "title": "Error rate above 5% after the switch (release v1.3.0)",
            "created_at": "2025-03-04T02:00:01Z",
            "status": status,
            "incident_key": key,
            "urgency": "high",
        }
        for number, status in enumerate(statuses)
    ]
    return {"incidents": incidents, "limit": 25, "offset": 0, "total": None, "more": False}


@pytest.fixture
def pagerduty():
    """PagerDuty's REST API: `says(status, ...)` sets the incidents of the release's key; none by default."""
    with respx.mock(assert_all_called=False) as router:
        route = router.get(INCIDENTS_URL)

        def says(*statuses: str) -> respx.Route:
            return route.mock(side_effect=lambda request: httpx.Response(200, json=incidents_body(request.url.params["incident_key"], *statuses)))

        says()
        router.says = says
        router.incidents = route
        yield router


@pytest.fixture
def world(policy, clock, sleeps, tmp_path, pagerduty):
    """A dispatcher over recording notifiers that writes the alert log, and PagerDuty's incidents reader."""
    notifiers = {name: Recording(name) for name in ("pagerduty", "sms", "slack", "email", "teams")}
    log = AlertLog(tmp_path / "alerts.jsonl")
    dispatcher = Dispatcher(notifiers, policy.alerting, clock, sleep=sleeps, contacts=CONTACTS, alert_log=log)
    http = httpx.Client()
    yield dispatcher, notifiers, log, PagerDutyIncidents(SecretStr(API_TOKEN), http)
    http.close()


def check(world, clock):
    dispatcher, _, log, incidents = world
    return escalate_open_alerts(log, incidents, dispatcher, clock)


def test_an_unacknowledged_critical_alert_escalates_to_the_team_lead_after_five_minutes(world, clock, alert, pagerduty):
    dispatcher, notifiers, _, _ = world
    pagerduty.says("triggered")
    dispatcher.notify(alert)

    clock.advance(timedelta(minutes=4, seconds=59))
    assert check(world, clock) == [] and not notifiers["sms"].sent[1:]
    assert not pagerduty.incidents.called  # nothing due: PagerDuty is not asked

    clock.advance(timedelta(seconds=1))
    [sent] = check(world, clock)

    assert (sent.level, sent.delivered, sent.failed) == ("team-lead", ("sms",), ())
    reminder = notifiers["sms"].sent[-1]
    assert (reminder.escalated_to, reminder.recipients) == ("team-lead", CONTACTS["team-lead"])
    assert len(notifiers["pagerduty"].sent) == 1  # PagerDuty escalates its incident itself
    request = pagerduty.incidents.calls.last.request
    assert request.url.params["incident_key"] == "tripgen-release/v1.3.0"
    assert request.headers["Authorization"] == f"Token token={API_TOKEN}"
    assert request.headers["Accept"] == REST_ACCEPT


@pytest.mark.parametrize("status", ["acknowledged", "resolved"])
def test_an_acknowledged_or_resolved_alert_never_escalates(world, clock, alert, pagerduty, status):
    dispatcher, notifiers, log, _ = world
    pagerduty.says(status)
    dispatcher.notify(alert)

    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        assert check(world, clock) == []

    assert len(notifiers["sms"].sent) == 1
    assert len(log.open_alerts()) == (1 if status == "acknowledged" else 0)  # an acknowledgement can time out


def test_an_acknowledgement_that_timed_out_escalates(world, clock, alert, pagerduty):
    dispatcher, _, _, _ = world
    pagerduty.says("acknowledged")
    dispatcher.notify(alert)
    clock.advance(timedelta(minutes=10))
    assert check(world, clock) == []

    pagerduty.says("resolved", "triggered")  # PagerDuty reopened it, or a new incident of the key
    assert [sent.level for sent in check(world, clock)] == ["team-lead"]


def test_a_high_alert_goes_to_the_next_level_after_fifteen_minutes(world, clock, alert):
    dispatcher, notifiers, _, _ = world
    dispatcher.notify(alert.model_copy(update={"severity": "high", "title": "5xx rate above the alert threshold"}))

    clock.advance(timedelta(minutes=14, seconds=59))
    assert check(world, clock) == []
    clock.advance(timedelta(seconds=1))
    [sent] = check(world, clock)

    assert (sent.level, sent.delivered) == ("next-level", ("slack", "email"))
    assert notifiers["email"].sent[-1].recipients["email"] == ("head-of-ops@tripgen.com",)
    assert notifiers["slack"].sent[-1].escalated_to == "next-level"


def test_a_second_run_does_not_escalate_twice_even_from_a_new_process(world, policy, clock, sleeps, alert, tmp_path):
    dispatcher, notifiers, log, incidents = world
    dispatcher.notify(alert)
    clock.advance(timedelta(minutes=5))
    assert len(check(world, clock)) == 1

    clock.advance(timedelta(minutes=1))
    assert check(world, clock) == []
    again = Dispatcher(notifiers, policy.alerting, clock, sleep=sleeps, contacts=CONTACTS)
    assert escalate_open_alerts(AlertLog(log.path), incidents, again, clock) == []
    assert len(notifiers["sms"].sent) == 2


def test_resolving_the_release_closes_its_alerts(world, clock, alert):
    dispatcher, notifiers, log, _ = world
    dispatcher.notify(alert)
    dispatcher.resolve(alert.release)

    clock.advance(timedelta(hours=1))

    assert check(world, clock) == [] and log.open_alerts() == []


def test_unreadable_pagerduty_state_escalates_and_an_undelivered_escalation_is_retried(world, clock, alert, pagerduty):
    dispatcher, notifiers, _, _ = world
    pagerduty.incidents.mock(return_value=httpx.Response(500))
    dispatcher.notify(alert)
    notifiers["sms"].send = lambda alert: Delivery("sms", False, 1, "HTTP 503")

    clock.advance(timedelta(minutes=5))
    [failed] = check(world, clock)
    del notifiers["sms"].send
    clock.advance(timedelta(minutes=1))
    [retried] = check(world, clock)

    assert (failed.delivered, failed.failed, retried.delivered) == ((), ("sms",), ("sms",))


def test_the_flow_escalates_from_the_alert_log_of_the_worker(monkeypatch, tmp_path, alert):
    """`escalate_alerts` on the worker's settings: a Critical alert raised 6 minutes ago reaches the team lead by SMS."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    env = {
        "TRIPGEN_POLICY": str(REPO / "policies" / "tripgen.yaml"),
        "TRIPGEN_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "TRIPGEN_PAGERDUTY_API_TOKEN": API_TOKEN,
        "TRIPGEN_SMS_URL": SMS_URL,
        "TRIPGEN_SMS_TOKEN": "smsToken",
        "TRIPGEN_SMS_TO": "+821000000001",
        "TRIPGEN_ESCALATION_TEAM_LEAD": "sms:+821011112222",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    AlertLog(tmp_path / "alerts.jsonl").sent(alert, datetime.now(timezone.utc) - timedelta(minutes=6))

    with respx.mock as router:
        router.get(INCIDENTS_URL, params={"incident_key": alert.dedup_key}).mock(
            return_value=httpx.Response(200, json=incidents_body(alert.dedup_key, "triggered")))
        sms = router.post(SMS_URL).mock(return_value=httpx.Response(202))
        first, second = escalate_alerts.fn(), escalate_alerts.fn()

    assert [(e["severity"], e["level"], e["delivered"]) for e in first] == [("critical", "team-lead", ("sms",))]
    assert second == [] and sms.call_count == 1
    assert sms.calls.last.request.read().decode().count("+821011112222") == 1


def test_the_escalation_deployment_runs_every_minute():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(spec)
    [deployment] = [d for d in spec["deployments"] if d["entrypoint"] == "flows.escalate.escalate_alerts"]
    assert deployment["schedules"] == [{"cron": "* * * * *", "timezone": "UTC"}]
    assert deployment["work_pool"]["name"] == "tripgen-release"


def test_an_unwritable_alert_log_never_fails_the_alert(policy, clock, sleeps, tmp_path, alert, caplog):
    (tmp_path / "file").write_text("")
    dispatcher = Dispatcher({"sms": Recording("sms")}, policy.alerting, clock, sleep=sleeps, alert_log=AlertLog(tmp_path / "file" / "alerts.jsonl"))

    deliveries = dispatcher.notify(alert)

    assert [d.notifier for d in deliveries] == ["pagerduty", "sms"] and "alert log" in caplog.text
