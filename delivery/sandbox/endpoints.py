"""The files a running sandbox leaves in its state directory: `endpoints.json` and `kubeconfig`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

CONTEXT = "tripgen-sandbox"


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of a running sandbox, all on 127.0.0.1."""

    kubernetes: str
    gateway: str
    prometheus: str
    registry: str
    control: str
    pushgateway: str | None = None  # with --monitoring: the release metrics' Pushgateway
    metrics_prometheus: str | None = None  # with --monitoring: the machine's Prometheus, scraping the Pushgateway and the telemetry

    def write(self, state_dir: Path, namespace: str = "production") -> None:
        """Write a kubeconfig whose current context is the sandbox, then endpoints.json.

        Each file appears whole (written aside, then renamed), and endpoints.json last: whoever
        waits for it finds the kubeconfig complete.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        _write_whole(state_dir / "kubeconfig", yaml.safe_dump(kubeconfig(self.kubernetes, namespace), sort_keys=False))
        _write_whole(state_dir / "endpoints.json", json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, state_dir: Path) -> Endpoints:
        """The endpoints of the sandbox serving from `state_dir`; FileNotFoundError says how to start one."""
        path = state_dir / "endpoints.json"
        if not path.exists():
            raise FileNotFoundError(
                f"no sandbox in {state_dir}: start one with `tripgen-release sandbox serve --state-dir {state_dir}`"
            )
        return cls(**json.loads(path.read_text()))

    @staticmethod
    def clear(state_dir: Path) -> None:
        """Remove the files, so nobody finds a stopped sandbox."""
        for name in ("endpoints.json", "kubeconfig"):
            (state_dir / name).unlink(missing_ok=True)


def _write_whole(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it into place, so no reader sees a part of it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def kubeconfig(server: str, namespace: str) -> dict:
    """A kubeconfig for the sandbox's API server (plain HTTP on loopback, no credentials)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": "sandbox-admin", "user": {}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "sandbox-admin", "namespace": namespace}}],
        "current-context": CONTEXT,
    }
