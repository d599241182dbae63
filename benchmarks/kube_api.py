"""Throughput and latency of the sandbox's Kubernetes API for a get/patch mix through the official client.

    python -m benchmarks.kube_api [--seconds 10] [--clients 4] [--rate 200]

Starts `tripgen-release sandbox serve` (load generator on, as in the demo), then runs two phases:
paced at `--rate` requests/s, and unpaced (as fast as the clients go). Prints one table row per phase.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from delivery.kube import connect
from delivery.sandbox.process import sandbox_process

NS = "production"
PATCH_SHARE = 3  # one request in three is a patch


def run_phase(kubeconfig: str, seconds: float, clients: int, rate: float | None) -> dict:
    """Each client alternates get/get/patch on Services; returns latencies and error counts."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    interval = clients / rate if rate else 0.0

    def client_loop(index: int) -> None:
        conn = connect(kubeconfig)
        service = ["user-service", "trip-service", "ai-service", "location-service"][index % 4]
        next_at, count = time.perf_counter(), 0
        while (now := time.perf_counter()) < stop_at:
            if interval and now < next_at:
                time.sleep(next_at - now)
            started = time.perf_counter()
            try:
                if count % PATCH_SHARE == PATCH_SHARE - 1:
                    body = {"metadata": {"annotations": {"benchmark/request": str(count)}}}
                    conn.core.patch_namespaced_service(service, NS, body)
                else:
                    conn.apps.read_namespaced_deployment(f"{service}-blue", NS)
            except ApiException:
                with lock:
                    errors[0] += 1
            with lock:
                latencies.append(time.perf_counter() - started)
            count += 1
            next_at += interval

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rate": len(ordered) / elapsed,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200, help="requests/s of the paced phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, sandbox_process(Path(work)):
        kubeconfig = str(Path(work) / "sandbox" / "kubeconfig")
        rows = [
            (f"paced {args.rate:g}/s", run_phase(kubeconfig, args.seconds, args.clients, args.rate)),
            ("unpaced", run_phase(kubeconfig, args.seconds, args.clients, None)),
        ]
    print(f"sandbox Kubernetes API, official client, get:patch = {PATCH_SHARE - 1}:1, {args.clients} clients, {args.seconds:g}s per phase")
    print(f"{'phase':<14} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in rows:
        print(f"{name:<14} {r['requests']:>9} {r['rate']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['errors']:>7}")


if __name__ == "__main__":
    main()
