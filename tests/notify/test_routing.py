"""R-ALERT, table-driven: which channels each severity reaches, and when and to whom an unacknowledged alert escalates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from delivery.notify import Alert, Delivery, Dispatcher, Escalation, channels_for
from delivery.policy.models import AlertRoute

CONTACTS = {
    "team-lead": {"sms": ("+821011112222",), "email": ("lead@tripgen.com",)},
    "next-level": {"email": ("head-of-ops@tripgen.com",), "slack": ("<@U0HEADOPS>",)},
    "manager": {"slack": ("<@U0MANAGER>",)},
    "weekly-report": {"email": ("weekly-report@tripgen.com",)},
}


class Recording:
    """A notifier that records what it was sent and always succeeds."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> Delivery:
        self.sent.append(alert)
        return Delivery(self.channel, True, 1, "recorded")

    def resolve(self, release: str) -> Delivery:
        return Delivery(self.channel, True, 1, f"resolved {release}")


def recording_dispatcher(policy, clock, sleeps) -> tuple[Dispatcher, dict[str, Recording]]:
    notifiers = {name: Recording(name) for name in ("pagerduty", "sms", "slack", "email", "teams")}
    return Dispatcher(notifiers, policy.alerting, clock, sleep=sleeps, contacts=CONTACTS), notifiers


@pytest.mark.parametrize(
    ("severity", "channels"),
    [
        ("critical", ("pagerduty", "sms")),
        ("high", ("slack", "email")),
        ("medium", ("slack",)),
        ("low", ("email",)),
    ],
)
def test_each_severity_reaches_exactly_its_channels(severity, channels, policy, clock, sleeps, alert):
    dispatcher, notifiers = recording_dispatcher(policy, clock, sleeps)

    deliveries = dispatcher.notify(alert.model_copy(update={"severity": severity}))

    assert channels_for(policy.alerting, severity) == channels
    assert tuple(d.notifier for d in deliveries) == channels
    assert {name for name, n in notifiers.items() if n.sent} == set(channels)


@pytest.mark.parametrize(
    ("severity", "elapsed", "level", "channels"),
    [
        ("critical", timedelta(minutes=4, seconds=59), None, None),
        ("critical", timedelta(minutes=5), "team-lead", ("sms",)),
        ("high", timedelta(minutes=14, seconds=59), None, None),
        ("high", timedelta(minutes=15), "next-level", ("slack", "email")),
        ("medium", timedelta(minutes=59), None, None),
        ("medium", timedelta(hours=1), "manager", ("slack",)),
        ("low", timedelta(hours=23, minutes=59), None, None),
        ("low", timedelta(hours=24), "weekly-report", ("email",)),
    ],
)
def test_an_unacknowledged_alert_escalates_after_the_policy_delay(severity, elapsed, level, channels, policy, clock, alert):
    escalation = Escalation(policy.alerting, clock, CONTACTS)
    escalation.track(alert.model_copy(update={"severity": severity}))

    clock.advance(elapsed)
    due = escalation.due()

    if level is None:
        assert due == []
    else:
        [reminder] = due
        assert (reminder.alert.escalated_to, reminder.channels) == (level, channels)
        assert reminder.alert.recipients == CONTACTS[level]
        assert reminder.alert.severity == severity


@pytest.mark.parametrize("severity", ["critical", "high", "medium", "low"])
def test_an_acknowledged_alert_never_escalates(severity, policy, clock, alert):
    escalation = Escalation(policy.alerting, clock, CONTACTS)
    escalation.track(alert.model_copy(update={"severity": severity}))

    escalation.acknowledge(alert.release)
    clock.advance(timedelta(days=2))

    assert escalation.due() == []


def test_each_escalation_is_handed_out_once(policy, clock, alert):
    escalation = Escalation(policy.alerting, clock, CONTACTS)
    escalation.track(alert)
    clock.advance(timedelta(minutes=5))

    assert len(escalation.due()) == 1
    clock.advance(timedelta(hours=1))
    assert escalation.due() == []


def test_a_repeated_alert_keeps_its_first_time(policy, clock, alert):
    escalation = Escalation(policy.alerting, clock, CONTACTS)
    escalation.track(alert)
    clock.advance(timedelta(minutes=3))
    escalation.track(alert)
    clock.advance(timedelta(minutes=2))

    assert len(escalation.due()) == 1


def test_acknowledging_one_release_leaves_the_others_pending(policy, clock, alert):
    escalation = Escalation(policy.alerting, clock, CONTACTS)
    escalation.track(alert)
    escalation.track(alert.model_copy(update={"release": "v1.4.0"}))

    escalation.acknowledge("v1.3.0")

    assert [a.release for a in escalation.pending()] == ["v1.4.0"]


def test_a_pagerduty_only_route_is_left_to_pagerduty(clock, alert):
    alerting = {"critical": AlertRoute(channels=["pagerduty"], response_time="0s", escalate_after="5m", escalate_to="team-lead")}
    escalation = Escalation(alerting, clock, CONTACTS)
    escalation.track(alert)

    clock.advance(timedelta(hours=1))

    assert escalation.pending() == [] and escalation.due() == []


def test_a_level_without_contacts_renotifies_the_channels_default_recipients(policy, clock, alert):
    escalation = Escalation(policy.alerting, clock, contacts={})
    escalation.track(alert)
    clock.advance(timedelta(minutes=5))

    [reminder] = escalation.due()

    assert (reminder.alert.escalated_to, reminder.alert.recipients) == ("team-lead", {})


def test_the_dispatcher_sends_due_escalations_to_the_level(policy, clock, sleeps, alert):
    dispatcher, notifiers = recording_dispatcher(policy, clock, sleeps)
    dispatcher.notify(alert)
    dispatcher.notify(alert.model_copy(update={"severity": "high", "title": "Approval waiting"}))

    clock.advance(timedelta(minutes=5))
    first = dispatcher.escalate()
    clock.advance(timedelta(minutes=10))
    second = dispatcher.escalate()

    assert [d.notifier for d in first] == ["sms"]
    assert [d.notifier for d in second] == ["slack", "email"]
    assert notifiers["sms"].sent[-1].recipients["sms"] == ("+821011112222",)
    assert notifiers["email"].sent[-1].recipients["email"] == ("head-of-ops@tripgen.com",)
    assert len(notifiers["pagerduty"].sent) == 1
    assert dispatcher.escalate() == []


def test_resolving_a_release_stops_its_escalation(policy, clock, sleeps, alert):
    dispatcher, _ = recording_dispatcher(policy, clock, sleeps)
    dispatcher.notify(alert)

    resolved = dispatcher.resolve(alert.release)
    clock.advance(timedelta(hours=1))

    assert resolved == Delivery("pagerduty", True, 1, "resolved v1.3.0")
    assert dispatcher.escalate() == []


def test_send_to_named_channels_does_not_track_escalation(policy, clock, sleeps, alert):
    dispatcher, notifiers = recording_dispatcher(policy, clock, sleeps)

    deliveries = dispatcher.send_to(policy.blue_green.notify, alert)

    assert [d.notifier for d in deliveries] == ["teams", "pagerduty"]
    assert dispatcher.escalation.pending() == []


def test_a_severity_the_policy_does_not_route_is_logged_not_raised(clock, sleeps, alert, caplog):
    alerting = {"critical": AlertRoute(channels=["sms"], response_time="0s", escalate_after="5m", escalate_to="team-lead")}
    dispatcher = Dispatcher({"sms": Recording("sms")}, alerting, clock, sleep=sleeps)

    assert dispatcher.notify(alert.model_copy(update={"severity": "low"})) == []
    assert "the policy routes no low alerts" in caplog.text
    assert dispatcher.escalation.pending() == []
