"""Units the policy is written in: durations like `30m` or `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: object) -> timedelta:
    """Parse `30m`, `10s`, `1h30m`, `250ms` or `24h` into a timedelta; refuse anything else."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"must be a duration such as '30s', '10m' or '24h', not {text!r}")
    spec = text.strip()
    if spec.startswith("-"):
        raise ValueError(f"must not be negative: '{spec}'")
    parts = _PART.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec:
        raise ValueError(f"'{spec}' is not a duration: write e.g. '30s', '10m', '1h30m' or '24h'")
    return timedelta(seconds=sum(float(n) * _SECONDS[u] for n, u in parts))


def format_duration(value: timedelta) -> str:
    """Write a timedelta back in the policy's notation (`1h30m`, `10s`, `250ms`)."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    out = []
    day = 86_400_000
    units = (("d", day),) if millis % day == 0 and millis >= 2 * day else ()
    for unit, size in (*units, ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A policy duration: written `30m`, held as a timedelta, never negative."""
