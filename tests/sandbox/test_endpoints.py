"""The state directory's files appear whole, and endpoints.json (what waiters look for) last."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from delivery.sandbox.endpoints import Endpoints

ENDPOINTS = Endpoints(*(f"http://127.0.0.1:{port}" for port in range(8001, 8006)))


def test_the_kubeconfig_is_complete_whenever_endpoints_json_exists(tmp_path: Path, monkeypatch) -> None:
    placed: list[tuple[str, dict]] = []
    original = Path.replace

    def noting(self: Path, target):
        original(self, target)
        snapshot = {name: (tmp_path / name).read_text() for name in ("kubeconfig", "endpoints.json") if (tmp_path / name).exists()}
        placed.append((Path(target).name, snapshot))
        return Path(target)

    monkeypatch.setattr(Path, "replace", noting)
    ENDPOINTS.write(tmp_path)
    assert [name for name, _ in placed] == ["kubeconfig", "endpoints.json"]
    _, seen_with_endpoints = placed[-1]
    assert yaml.safe_load(seen_with_endpoints["kubeconfig"])["clusters"][0]["cluster"]["server"] == ENDPOINTS.kubernetes
    assert json.loads(seen_with_endpoints["endpoints.json"])["kubernetes"] == ENDPOINTS.kubernetes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["endpoints.json", "kubeconfig"]  # no partial file left
    assert Endpoints.read(tmp_path) == ENDPOINTS
