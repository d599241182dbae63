"""Durations and the sync window."""

from datetime import datetime, timedelta, timezone

import pytest

from delivery.policy.models import SyncWindow
from delivery.policy.window import describe_window, next_window_opens, window_closes_at, window_open_at
from delivery.units import format_duration, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("10m", 600), ("24h", 86400), ("1h30m", 5400), ("250ms", 0.25), ("30d", 2592000), ("0s", 0)],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["-5m", "5", "m5", "5 m", "", "5min", "1h-5m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30s", "10m", "24h", "1h30m", "250ms", "30d", "2557d"])
def test_durations_round_trip(text):
    assert format_duration(parse_duration(text)) == text


SEOUL_WINDOW = SyncWindow()  # Mon-Fri 02:00-04:00 Asia/Seoul


@pytest.mark.parametrize(
    "utc, is_open",
    [
        ("2026-11-26T17:00:00", True),  # Fri 02:00 KST: opens
        ("2026-11-26T18:59:59", True),  # Fri 03:59:59 KST
        ("2026-11-26T19:00:00", False),  # Fri 04:00 KST: closed
        ("2026-11-26T16:59:59", False),  # Fri 01:59:59 KST
        ("2026-11-27T17:30:00", False),  # Sat 02:30 KST
    ],
)
def test_window_open_and_closed(utc, is_open):
    moment = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)
    assert (window_open_at(SEOUL_WINDOW, moment) is not None) is is_open


def test_window_close_and_next_opening():
    friday_0330 = datetime(2026, 11, 26, 18, 30, tzinfo=timezone.utc)
    assert window_closes_at(SEOUL_WINDOW, friday_0330) == datetime(2026, 11, 26, 19, 0, tzinfo=timezone.utc)
    saturday = datetime(2026, 11, 28, 0, 0, tzinfo=timezone.utc)
    assert next_window_opens(SEOUL_WINDOW, saturday) == datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc)


def test_window_descriptions():
    assert describe_window(SEOUL_WINDOW).startswith("Mon-Fri 02:00-04:00 Asia/Seoul")
    always = SyncWindow(schedule="0 0 * * *", duration=timedelta(hours=24))
    assert describe_window(always).startswith("always open")
    assert window_open_at(always, datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)) is not None
