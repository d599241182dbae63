"""Where a release's time goes: spans of cluster API calls, pod readiness waits, probes, metrics queries and approval
pauses, kept while `recording()` is active in the calling context (benchmarks/release_overhead.py). Prefect's task
runner copies the context into its task threads; outside a recording each `timed` costs one ContextVar lookup."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["cluster API", "pod readiness", "probes", "metrics", "approvals"]


@dataclass(frozen=True)
class Span:
    """One timed stretch of one thread, in time.time() seconds."""

    kind: Kind
    start: float
    end: float


@dataclass
class SpanLog:
    """The spans recorded so far, from any thread."""

    spans: list[Span] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, span: Span) -> None:
        with self._lock:
            self.spans.append(span)


_RECORDING: ContextVar[SpanLog | None] = ContextVar("tripgen_timing", default=None)


@contextmanager
def recording() -> Iterator[SpanLog]:
    """Keep every span timed in this context (and the task threads started from it) until the block ends."""
    log = SpanLog()
    token = _RECORDING.set(log)
    try:
        yield log
    finally:
        _RECORDING.reset(token)


@contextmanager
def timed(kind: Kind) -> Iterator[None]:
    """A span of `kind` around the block, when a recording is active."""
    log = _RECORDING.get()
    if log is None:
        yield
        return
    start = time.time()
    try:
        yield
    finally:
        log.add(Span(kind, start, time.time()))
