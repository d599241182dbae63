"""The sync window (R-GITOPS-2): is it open now, when does it open next, and how to say it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from delivery.policy.models import SyncWindow
from delivery.units import format_duration

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def window_open_at(window: SyncWindow, moment: datetime) -> datetime | None:
    """The start of the window that is open at `moment` (aware datetime), or None when closed."""
    local = moment.astimezone(ZoneInfo(window.timezone))
    probe = croniter(window.schedule, local - window.duration).get_next(datetime)
    return probe if probe <= local else None


def window_closes_at(window: SyncWindow, moment: datetime) -> datetime | None:
    """When the window open at `moment` closes, or None when it is closed."""
    start = window_open_at(window, moment)
    return start + window.duration if start else None


def next_window_opens(window: SyncWindow, moment: datetime) -> datetime:
    """The next time a window opens after `moment`, in the window's time zone."""
    local = moment.astimezone(ZoneInfo(window.timezone))
    return croniter(window.schedule, local).get_next(datetime)


def describe_window(window: SyncWindow) -> str:
    """`Mon-Fri 02:00-04:00 Asia/Seoul` when every opening has the same hours, else the cron and duration."""
    zone = ZoneInfo(window.timezone)
    week_start = datetime(2024, 1, 1, tzinfo=zone)  # a Monday
    starts = croniter(window.schedule, week_start - timedelta(seconds=1))
    opens: list[datetime] = []
    while (start := starts.get_next(datetime)) < week_start + timedelta(days=7) and len(opens) < 10_080:
        opens.append(start)
    spec = f"cron '{window.schedule}', {format_duration(window.duration)}"
    if opens and _covers_the_week(opens, window.duration):
        return f"always open ({spec})"
    hours = {(s.time(), (s + window.duration).time()) for s in opens}
    if len(hours) == 1 and window.duration < timedelta(days=1):
        (begin, end), days = hours.pop(), sorted({s.weekday() for s in opens})
        return f"{_day_ranges(days)} {begin:%H:%M}-{end:%H:%M} {window.timezone} ({spec})"
    return f"{spec}, {window.timezone}"


def _covers_the_week(opens: list[datetime], duration: timedelta) -> bool:
    gaps = [b - a for a, b in zip(opens, opens[1:] + [opens[0] + timedelta(days=7)])]
    return max(gaps) <= duration


def _day_ranges(days: list[int]) -> str:
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = [_DAYS[r[0]] if len(r) == 1 else f"{_DAYS[r[0]]}-{_DAYS[r[-1]]}" for r in runs]
    return "daily" if days == list(range(7)) else ",".join(parts)
