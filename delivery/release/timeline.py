"""A release run's runbook as it happened: its production task runs in start order, as one line of steps
(`expand → deploy → switch → backfill → watch → retire → contract`)."""

from __future__ import annotations

import re

STEPS = ((re.compile(r"^migrations \S+: (\w+)$"), None), (re.compile(r"^deploy \S+ idle color$"), "deploy"),
         (re.compile(r"^switch \S+ to "), "switch"), (re.compile(r"^watch \S+ \(production\)$"), "watch"),
         (re.compile(r"^retire "), "retire"), (re.compile(r"^deploy \S+-canary$"), "canary"),
         (re.compile(r"^promote "), "promote"), (re.compile(r"^restore production"), "restore"))
"""Task run names (tasks/) and their step; a migration's step is its phase."""


def runbook_steps(task_runs: list[dict], migrated: set[str]) -> list[str]:
    """The production steps of `task_runs` (Prefect's task run objects) in start order, repeats folded; a
    migration phase shows only when it ran files (`migrated`: the phases audited `migration_applied`)."""
    steps: list[str] = []
    for run in sorted((r for r in task_runs if r.get("start_time")), key=lambda r: r["start_time"]):
        step = _step(run["name"], migrated)
        if step and (not steps or steps[-1] != step):
            steps.append(step)
    return steps


def _step(name: str, migrated: set[str]) -> str | None:
    for pattern, step in STEPS:
        if match := pattern.match(name):
            phase = step or match.group(1)
            return phase if step or phase in migrated else None
    return None
