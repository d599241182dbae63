"""The emergency procedure's look at a service (SPEC §8): pods, events, logs and previous logs, resource use,
the app's actuator metrics and latency to PostgreSQL; a markdown report and a tar.gz bundle kept 30 days."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median

import httpx
import psycopg

from delivery.kube import Diagnostics
from delivery.kube.metrics import PodResources, mebibytes
from delivery.release.describe import markdown_table

ACTUATOR_METRICS = ("jvm.memory.used", "http.server.requests", "hikaricp.connections")
KEEP_FOR = timedelta(days=30)
LOG_TAIL_LINES = 200
DB_SAMPLES = 5


@dataclass
class Diagnosis:
    """What was found for some services of one namespace: markdown sections and the files of the bundle."""

    namespace: str
    services: tuple[str, ...]
    taken_at: datetime
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, markdown)
    files: dict[str, bytes] = field(default_factory=dict)  # bundle path -> content

    def add(self, title: str, markdown: str, **files: bytes) -> None:
        self.sections.append((title, markdown))
        self.files.update(files)

    def markdown(self) -> str:
        head = f"# Diagnosis of {', '.join(self.services)} in {self.namespace}\n\nTaken at {self.taken_at:%Y-%m-%d %H:%M:%S} UTC.\n"
        return head + "".join(f"\n## {title}\n\n{body}\n" for title, body in self.sections)

    def write_bundle(self, directory: Path) -> Path:
        """`diagnosis-<namespace>-<services>-<time>.tar.gz` in `directory` (report.md and every file); bundles older
        than 30 days there are deleted."""
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("diagnosis-*.tar.gz"):
            if datetime.fromtimestamp(old.stat().st_mtime, self.taken_at.tzinfo) < self.taken_at - KEEP_FOR:
                old.unlink()
        path = directory / f"diagnosis-{self.namespace}-{'-'.join(self.services)}-{self.taken_at:%Y%m%dT%H%M%SZ}.tar.gz"
        with tarfile.open(path, "w:gz") as bundle:
            for name, content in {"report.md": self.markdown().encode(), **self.files}.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(content), int(self.taken_at.timestamp())
                bundle.addfile(info, io.BytesIO(content))
        return path


@dataclass
class Diagnoser:
    """Collects a Diagnosis through the cluster's API, the services' HTTP endpoints and the database."""

    diagnostics: Diagnostics
    resources: PodResources
    http: httpx.Client
    gateway_url: str
    database_dsn: Callable[[], str | None] = lambda: None

    def collect(self, namespace: str, services: Iterable[str], now: datetime) -> Diagnosis:
        diagnosis = Diagnosis(namespace, tuple(services), now)
        pods = {service: self.diagnostics.pods(namespace, {"app": service}) for service in diagnosis.services}
        diagnosis.add("Pods", markdown_table([{"service": s, **p} for s, found in pods.items() for p in found]))
        events = [e for e in self.diagnostics.events(namespace)
                  if any(service in e["object"] for service in diagnosis.services)]
        diagnosis.add("Events (oldest first)", markdown_table(events[-50:]), **{"events.json": _json(events)})
        self._logs(diagnosis, namespace, [p["name"] for found in pods.values() for p in found])
        self._resources(diagnosis, namespace)
        self._actuator(diagnosis, namespace)
        self._database(diagnosis)
        return diagnosis

    def _logs(self, diagnosis: Diagnosis, namespace: str, pods: list[str]) -> None:
        rows, files = [], {}
        for pod in pods:
            current = self.diagnostics.logs(namespace, pod, tail_lines=LOG_TAIL_LINES)
            previous = self.diagnostics.logs(namespace, pod, tail_lines=LOG_TAIL_LINES, previous=True)
            files[f"logs/{pod}.log"] = current.encode()
            if previous:
                files[f"logs/{pod}.previous.log"] = previous.encode()
            last = (previous.strip().splitlines() or ["-"])[-1][:160]
            rows.append({"pod": pod, "log lines": len(current.splitlines()), "previous container": f"{len(previous.splitlines())} lines, last: {last}" if previous else "none"})
        diagnosis.add("Logs (files in the bundle: logs/)", markdown_table(rows), **files)

    def _resources(self, diagnosis: Diagnosis, namespace: str) -> None:
        rows = []
        for service in diagnosis.services:
            sample = self.resources.sample(namespace, {"app": service})
            rows += [{"service": service, "pod": p.pod, "cpu": "?" if p.cpu_millicores is None else f"{p.cpu_millicores:.0f}m",
                      "memory": mebibytes(p.memory_bytes), "limit": mebibytes(p.memory_limit_bytes), "restarts": p.restarts,
                      "last terminated": p.last_termination or "-"} for p in sample.pods]
            if sample.unreadable:
                rows.append({"service": service, "pod": "-", "cpu": sample.unreadable})
        try:
            nodes = [{"node": n.node, "cpu": f"{n.cpu_millicores:.0f}m", "memory": mebibytes(n.memory_bytes)} for n in self.resources.nodes()]
        except Exception as err:  # noqa: BLE001 - a report says what it could not read
            nodes = [{"node": f"unreadable: {type(err).__name__}: {err}"[:200]}]
        diagnosis.add("Resource use (kubectl top)", f"Pods:\n\n{markdown_table(rows)}\n\nNodes:\n\n{markdown_table(nodes)}",
                      **{"resources.json": _json({"pods": rows, "nodes": nodes})})

    def _actuator(self, diagnosis: Diagnosis, namespace: str) -> None:
        rows, raw = [], {}
        for service in diagnosis.services:
            host = f"{service}.{namespace}.svc.cluster.local"
            for name in ACTUATOR_METRICS:
                value, answer = self._metric(host, name)
                rows.append({"service": service, "metric": name, "value": value})
                raw[f"{service}/{name}"] = answer
        diagnosis.add("Actuator metrics", markdown_table(rows), **{"actuator.json": _json(raw)})

    def _metric(self, host: str, name: str) -> tuple[str, object]:
        try:
            response = self.http.get(f"{self.gateway_url.rstrip('/')}/actuator/metrics/{name}", headers={"Host": host})
        except httpx.HTTPError as err:
            return f"unreachable: {type(err).__name__}", None
        if response.status_code != 200:
            return f"HTTP {response.status_code}", response.text[:500]
        body = response.json()
        measured = ", ".join(f"{m['statistic']} {m['value']:g}" for m in body.get("measurements", []))
        return f"{measured} {body.get('baseUnit') or ''}".strip(), body

    def _database(self, diagnosis: Diagnosis) -> None:
        dsn = self.database_dsn()
        if not dsn:
            diagnosis.add("PostgreSQL latency", "not measured: no database configured (the migrations gate's DSN)")
            return
        try:
            with psycopg.connect(dsn, connect_timeout=5) as connection:
                samples = []
                for _ in range(DB_SAMPLES):
                    started = time.perf_counter()
                    connection.execute("SELECT 1").fetchone()
                    samples.append((time.perf_counter() - started) * 1000)
        except psycopg.Error as err:
            diagnosis.add("PostgreSQL latency", f"unreachable: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
            return
        diagnosis.add("PostgreSQL latency", f"`SELECT 1` round trip over {DB_SAMPLES} samples: median "
                                            f"{median(samples):.2f} ms, max {max(samples):.2f} ms")


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, default=str).encode()
