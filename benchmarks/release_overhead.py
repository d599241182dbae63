"""Where a release's wall time goes when every policy wait is zero: Prefect, cluster API, pod readiness, probes, ...

    python -m benchmarks.release_overhead [--work DIR] [--database postgres|sqlite]

Starts `prefect server start` (on a PostgreSQL it starts with the machine's binaries, or `--database sqlite`)
and the sandbox (shipped scenario: pods ready 500 ms after they start) in a temporary directory (`--work` keeps it), then releases all four services through the `release` flow, called in
this process as a worker's flow-run process calls it: first blue-green (v1.2.0), then canary (v1.3.0). The policy
is policies/demo.yaml with every wait at zero: one watch check right after each switch (interval 1 ms, its
inconclusive verdict tolerated), no grace, no health retry pause, canary stages of one 1 ms analysis interval,
approvals answered as soon as the pause's form is there (codes read from the mail, poll every 50 ms).

How the wall time (the flow call, from entering to returning) is split: the project times its own waits with
`delivery.timing` (a ContextVar read by `KubeConnection.call`, `Deployments.wait_rolled_out`, `Prober`,
`PrometheusClient` and the approval pauses; Prefect copies it into task threads), and Prefect's API gives each task
run's Running and final times. Every instant of the wall goes to the first of these that is in progress in any
thread: approvals, pod readiness, probes, metrics, cluster API, task (the rest of a running task's body), else
Prefect: creating task runs, state updates, the flow body between tasks. Parallel steps are thus counted once.
Worker pickup and flow-run process start are not included (benchmarks.failures measures those).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from benchmarks.stack import REPO, overlay, prefect_server, reports_with
from delivery.localdb import LocalPostgres
from delivery.code_mailbox import CodeMailbox
from delivery.prefect_rest import PrefectRest
from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.process import sandbox_process
from delivery.timing import Span, SpanLog, recording

SERVICES = ["user-service", "trip-service", "ai-service", "location-service"]
APPROVERS = ("demo-lead", "demo-ops")
INSTANT = "1ms"  # the shortest wait the policy takes where it wants a positive one
ZERO_WAITS = {
    "environments": {"staging": {"watch": "0s"}, "production": {"watch": "0s"}, "canary": {"watch": "0s"}},
    "watch": {"interval": INSTANT, "tolerated_failed_checks": 1},
    "validation": {"health_retry_interval": "0s"},
    "blue_green": {"old_color_grace": "0s"},
    "canary": {"stages": [{"weight": w, "observe": INSTANT} for w in (5, 25, 50, 100)], "analysis": {"interval": INSTANT}},
    "approvals": {"poll_interval": "50ms"},
}
RELEASES = (("blue-green", "v1.2.0"), ("canary", "v1.3.0"))
ANSWER_POLL = 0.05
RELEASE_BOUND = 300  # seconds for one release, approvals included
RECORDED_BOUND = 30  # seconds for the server to record every task run's final state
PARTS = ("Prefect", "cluster API", "pod readiness", "probes", "metrics", "approvals", "task")
PRIORITY = ("approvals", "pod readiness", "probes", "metrics", "cluster API", "task")  # the first in progress gets an instant
TARGET_WALL, TARGET_PREFECT_SHARE = 15.0, 30.0  # issue 16: blue-green under 15 s, Prefect's share under 30%
DATABASE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class Breakdown:
    """One release's wall time and the seconds each part had of it (they add up to the wall)."""

    strategy: str
    tag: str
    outcome: str
    wall: float
    seconds: Counter[str]
    task_runs: int
    api_calls: int

    def share(self, part: str) -> float:
        return 100 * self.seconds[part] / self.wall


@dataclass
class FlowCall:
    """The release flow called in a thread of this process, its spans recorded; `state` once it returned."""

    strategy: str
    tag: str
    spans: SpanLog | None = None
    state: object = None
    began: float = 0.0
    ended: float = 0.0
    thread: threading.Thread | None = None

    def start(self) -> FlowCall:
        self.thread = threading.Thread(target=self._call, name=f"release-{self.tag}", daemon=True)
        self.thread.start()
        return self

    def _call(self) -> None:
        from flows.release import release  # Prefect takes PREFECT_API_URL from the environment when first imported

        with recording() as self.spans:
            self.began = time.time()
            try:
                self.state = release(tag=self.tag, strategy=self.strategy, initiator="demo-dev", force=True,
                                     reason="benchmarks.release_overhead", return_state=True)
            finally:
                self.ended = time.time()

    def join(self) -> None:
        self.thread.join(RELEASE_BOUND)
        if self.thread.is_alive():
            raise TimeoutError(f"release-{self.tag} still running after {RELEASE_BOUND} s")


def flow_run_of(api: PrefectRest, tag: str, since: float) -> str:
    """The id of the flow run `release-<tag>` created after `since`, once the server has it."""
    deadline = time.monotonic() + RELEASE_BOUND
    while time.monotonic() < deadline:
        for run in api.runs_named(f"release-{tag}"):
            if at(run["created"]) >= since:
                return run["id"]
        time.sleep(ANSWER_POLL)
    raise TimeoutError(f"no flow run release-{tag} appeared")


def answer_approvals(api: PrefectRest, mailbox: CodeMailbox, run_id: str) -> None:
    """Resume each pause as the next approver, with the code mailed to them, until the run ends."""
    answered, count = None, 0
    while True:
        _, pause = api.wait_for(run_id, RELEASE_BOUND, after_key=answered, poll=ANSWER_POLL)
        if pause is None:
            return
        approver = APPROVERS[count % len(APPROVERS)]
        code = mailbox.code(f"{approver}@tripgen.local", run_id)
        api.resume(run_id, {"approver": approver, "code": code, "approve": True, "comment": "benchmark"})
        answered, count = pause.key, count + 1


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def task_spans(api: PrefectRest, run_id: str) -> list[Span]:
    """Each task run from Running to its final state, once the server recorded every one's end."""
    deadline = time.monotonic() + RECORDED_BOUND
    while (runs := api.task_runs(run_id)) and any(r["end_time"] is None for r in runs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task runs of {run_id} still unfinished after {RECORDED_BOUND} s")
        time.sleep(ANSWER_POLL)
    return [Span("task", at(r["start_time"]), at(r["end_time"])) for r in runs if r["start_time"]]


def attribute(spans: list[Span], begin: float, end: float) -> Counter[str]:
    """Seconds of [begin, end] per part: each instant to the first kind of PRIORITY in progress, else Prefect."""
    edges = sorted([(max(s.start, begin), 1, s.kind) for s in spans] + [(min(s.end, end), -1, s.kind) for s in spans])
    active, seconds, now = Counter(), Counter({part: 0.0 for part in PARTS}), begin
    for moment, change, kind in edges + [(end, 0, "task")]:
        if moment > now:
            seconds[next((k for k in PRIORITY if active[k] > 0), "Prefect")] += moment - now
            now = moment
        active[kind] += change
    return seconds


def measure_release(api: PrefectRest, mailbox: CodeMailbox, strategy: str, tag: str) -> Breakdown:
    """One release, its approvals answered; its wall time split into parts."""
    since = time.time()
    call = FlowCall(strategy, tag).start()
    run_id = flow_run_of(api, tag, since)
    answer_approvals(api, mailbox, run_id)
    call.join()
    tasks = task_spans(api, run_id)
    spans = call.spans.spans + tasks
    seconds = attribute(spans, call.began, call.ended)
    api_calls = sum(s.kind == "cluster API" for s in spans)
    return Breakdown(strategy, tag, outcome_of(call.state), call.ended - call.began, seconds, len(tasks), api_calls)


def outcome_of(state: object) -> str:
    return "released" if state.is_completed() else f"{state.type.value}: {state.message}"


def print_table(rows: list[Breakdown], database: str) -> None:
    print(f"release overhead: {' + '.join(SERVICES)} on the sandbox, every policy wait zero; the release flow called in "
          f"this process against `prefect server start` ({DATABASE_NAMES[database]}); {os.cpu_count()} cores; worker pickup and process start not included")
    print(f"{'release':<18} {'wall s':>7} " + " ".join(f"{part:>13}" for part in PARTS) + f" {'tasks':>6} {'API calls':>9}  outcome")
    for row in rows:
        cells = " ".join(f"{row.seconds[part]:>6.2f} {row.share(part):>4.0f}%" for part in PARTS)
        print(f"{row.strategy + ' ' + row.tag:<18} {row.wall:>7.2f} {cells} {row.task_runs:>6} {row.api_calls:>9}  {row.outcome}")
    blue_green = rows[0]
    fast, light = blue_green.wall < TARGET_WALL, blue_green.share("Prefect") < TARGET_PREFECT_SHARE
    print(f"target, blue-green: wall {blue_green.wall:.1f} s < {TARGET_WALL:g} s: {_yes(fast)}; "
          f"Prefect {blue_green.share('Prefect'):.0f}% < {TARGET_PREFECT_SHARE:g}%: {_yes(light)}")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def settings(work: Path, policy_file: Path, endpoints: Endpoints, mailbox: CodeMailbox, api: PrefectRest) -> dict[str, str]:
    """The environment this process releases with, as a worker's flow-run process has it (every thread sees it)."""
    tripgen = {
        **{f"{part.upper()}_URL": getattr(endpoints, part) for part in ("registry", "prometheus", "gateway")},
        "POLICY": str(policy_file), "KUBECONFIG": str(work / "sandbox" / "kubeconfig"),
        "REPORTS": str(reports_with(work, tuple(tag for _, tag in RELEASES if tag != "v1.2.0"))),
        "AUDIT_LOG": str(work / "audit.jsonl"), "RUN_TRIVY": "false", "APPROVAL_CODE_KEY": "benchmark-" + "0" * 32,
    }
    return {**{f"TRIPGEN_{k}": v for k, v in tripgen.items()}, **mailbox.settings(),
            "PREFECT_API_URL": api.api_url, "PREFECT_HOME": str(work / "client-home")}


def server_database(started: ExitStack, work: Path, database: str) -> str | None:
    """The Prefect server's database URL: None for SQLite, else a PostgreSQL the benchmark starts under `work`."""
    if database == "sqlite":
        return None
    work.chmod(work.stat().st_mode | 0o011)  # the server runs as the postgres user (a temporary dir is 0700)
    postgres = started.enter_context(LocalPostgres(work / "postgres"))
    return postgres.create_database("prefect").replace("postgresql://", "postgresql+asyncpg://", 1)


def measure(work: Path, database: str) -> list[Breakdown]:
    work.mkdir(parents=True, exist_ok=True)
    policy_file = work / "policy.yaml"
    policy = overlay(yaml.safe_load((REPO / "policies" / "demo.yaml").read_text()), ZERO_WAITS)
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    with ExitStack() as started:
        api = started.enter_context(prefect_server(work, server_database(started, work, database)))
        endpoints = started.enter_context(sandbox_process(work, policy_file))
        mailbox = started.enter_context(CodeMailbox())
        os.environ.update(settings(work, policy_file, endpoints, mailbox, api))
        rows = []
        for strategy, tag in RELEASES:
            print(f"releasing {tag} ({strategy}) ...", file=sys.stderr, flush=True)
            rows.append(measure_release(api, mailbox, strategy, tag))
        return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="run the stack in this directory and keep it (logs, audit log)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres",
                        help="the Prefect server's: SQLite, or a PostgreSQL the benchmark starts with the machine's binaries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="release-overhead-") as scratch:
        rows = measure(args.work or Path(scratch), args.database)
    print_table(rows, args.database)
    return 0 if all(row.outcome == "released" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
