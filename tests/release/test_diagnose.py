"""`tripgen-release diagnose` against the sandbox (SPEC §8, issue 15): every section, the bundle, a crash-looping pod's
previous logs, and the latency to a real PostgreSQL."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from click.testing import CliRunner

from delivery.cli import cli
from delivery.kube import connect
from tests.postgres import postgres_admin_dsn  # noqa: F401 - the fixture
from tests.waiting import wait_until

SECTIONS = ("Pods", "Events (oldest first)", "Logs", "Resource use (kubectl top)", "Actuator metrics", "PostgreSQL latency")


def crash_loop(service: str, color: str = "blue", timeout: float = 60) -> None:
    """Point the live color at a crash-looping image and wait until one of its containers restarted."""
    conn = connect(os.environ["TRIPGEN_KUBECONFIG"])
    name = f"{service}-{color}"
    deployment = conn.apps.read_namespaced_deployment(name, "production")
    image = deployment.spec.template.spec.containers[0].image.rsplit(":", 1)[0].split("@")[0]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": deployment.spec.template.spec.containers[0].name,
                                                             "image": f"{image}:v1.3.0-crashloop"}]}}}}
    conn.apps.patch_namespaced_deployment(name, "production", patch)
    wait_until(lambda: any(s.restart_count for p in conn.core.list_namespaced_pod("production", label_selector=f"app={service}").items
                           for s in p.status.container_statuses or [] if "crashloop" in s.image),
               timeout, f"a restarted {name} container", interval=0.5)


def test_diagnose_writes_every_section_and_the_bundle(sandbox, tmp_path, monkeypatch, postgres_admin_dsn):  # noqa: F811
    monkeypatch.setenv("TRIPGEN_DATABASE_URL", postgres_admin_dsn)
    crash_loop("trip-service")
    result = CliRunner().invoke(cli, ["diagnose", "trip-service", "--out", str(tmp_path / "bundles")])
    assert result.exit_code == 0, result.output
    for section in SECTIONS:
        assert f"## {section}" in result.output, section
    assert "Waiting (CrashLoopBackOff)" in result.output or "Terminated" in result.output
    assert "median" in result.output and " ms" in result.output  # SELECT 1 on the real PostgreSQL
    assert "jvm.memory.used" in result.output and "HTTP 404" not in result.output
    bundle = Path(result.output.strip().splitlines()[-1].split()[1])
    assert bundle.parent == tmp_path / "bundles" and bundle.name.startswith("diagnosis-production-trip-service-")
    with tarfile.open(bundle) as opened:
        names = opened.getnames()
        previous = [n for n in names if n.endswith(".previous.log")]
        assert previous and "Exception" in opened.extractfile(previous[0]).read().decode()
    assert {"report.md", "events.json", "resources.json", "actuator.json"} <= set(names)
    assert any(n.startswith("logs/trip-service-") and n.endswith(".log") for n in names)


def test_an_unknown_service_is_a_usage_error(sandbox):
    result = CliRunner().invoke(cli, ["diagnose", "payment-service"])
    assert result.exit_code == 2 and "unknown service(s) payment-service: choose from" in result.output
