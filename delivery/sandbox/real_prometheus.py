"""Run the machine's real Prometheus (Debian package `prometheus`) scraping the sandbox's telemetry, and a Pushgateway
(Debian `prometheus-pushgateway`) it scrapes for the release metrics."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml


@dataclass
class RunningProcess:
    """A Prometheus or Pushgateway process and the URL of its HTTP API."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prometheus_binary() -> str | None:
    """Path of the `prometheus` executable, or None when it is not installed."""
    return shutil.which("prometheus")


def _job(name: str, target: str) -> dict:
    return {"job_name": name, "honor_labels": True, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}


def write_config(directory: Path, metrics_target: str, scrape_interval_seconds: float, pushgateway: str | None = None) -> Path:
    """A prometheus.yml scraping `metrics_target` (`127.0.0.1:PORT`) at `/metrics`, and the Pushgateway when given
    (honor_labels keeps the pushed `job` and grouping labels, as docker-compose's Prometheus does)."""
    interval = f"{max(1, round(scrape_interval_seconds))}s"
    jobs = [_job("tripgen-sandbox", metrics_target)] + ([_job("tripgen-pushgateway", pushgateway)] if pushgateway else [])
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_prometheus(
    directory: Path, metrics_target: str, port: int, scrape_interval_seconds: float = 1, ready_timeout: float = 30,
    pushgateway: str | None = None,
) -> RunningProcess:
    """Start Prometheus on 127.0.0.1:`port`, wait until `/-/ready`; RuntimeError with its log when it fails."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("prometheus is not installed: apt-get install prometheus (or let .ci/run do it)")
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, metrics_target, scrape_interval_seconds, pushgateway)
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        "--storage.tsdb.retention.time=2h",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    return _start("prometheus", command, directory / "prometheus.log", port, ready_timeout)


def start_pushgateway(directory: Path, port: int, ready_timeout: float = 30) -> RunningProcess:
    """Start a Pushgateway on 127.0.0.1:`port` (metrics kept in memory), wait until `/-/ready`."""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        raise RuntimeError("the Pushgateway is not installed: apt-get install prometheus-pushgateway (or let .ci/run do it)")
    directory.mkdir(parents=True, exist_ok=True)
    command = [binary, f"--web.listen-address=127.0.0.1:{port}"]
    return _start("pushgateway", command, directory / "pushgateway.log", port, ready_timeout)


def _start(name: str, command: list[str], log_path: Path, port: int, ready_timeout: float) -> RunningProcess:
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    running = RunningProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{running.url}/-/ready", timeout=1).status_code == 200:
                return running
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    running.stop()
    raise RuntimeError(f"{name} was not ready within {ready_timeout:g}s:\n{log_path.read_text()[-2000:]}")
