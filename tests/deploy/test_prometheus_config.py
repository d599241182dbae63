"""infra/prometheus, the Prometheus of docker-compose.yml: promtool accepts it with the example targets
file, and it federates every metric the policy's default query templates read."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from delivery.policy.default_queries import DEFAULT_QUERIES
from tests.conftest import REPO
from tests.prometheus.test_kpi_rules import promtool

PROMETHEUS = REPO / "infra" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
MOUNTED_AT = "/etc/prometheus"  # where docker-compose.yml mounts infra/prometheus

def promtool_check(config_text: str, targets_text: str, work: Path) -> subprocess.CompletedProcess:
    """`promtool check config` on a copy whose file_sd glob points at `work`, holding one targets file."""
    (work / "federate").mkdir()
    (work / "federate" / "cluster.yml").write_text(targets_text)
    config = work / "prometheus.yml"
    config.write_text(config_text.replace(MOUNTED_AT, str(work)))
    return promtool("check", "config", config)


def test_promtool_accepts_the_config_and_the_example_targets(tmp_path):
    result = promtool_check(CONFIG.read_text(), (PROMETHEUS / "federate" / "cluster.yml.example").read_text(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("config", "targets"), [
    (CONFIG.read_text().replace("scrape_interval: 15s", "scrape_interval: 15 seconds"), "- targets: [a:9090]\n"),
    (CONFIG.read_text(), "- target: [a:9090]\n"),
], ids=["bad duration", "bad targets file"])
def test_promtool_rejects_a_broken_copy(tmp_path, config, targets):
    assert promtool_check(config, targets, tmp_path).returncode != 0


def federate_job() -> dict:
    return next(j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"] if j.get("metrics_path") == "/federate")


def test_compose_mounts_this_config_where_the_file_sd_glob_looks():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert f"./infra/prometheus:{MOUNTED_AT}:ro" in compose["services"]["prometheus"]["volumes"]
    assert federate_job()["file_sd_configs"][0]["files"] == [f"{MOUNTED_AT}/federate/*.yml"]


def test_federation_copies_every_metric_of_the_default_queries():
    federated = set()
    for selector in federate_job()["params"]["match[]"]:
        federated |= set(re.fullmatch(r'\{__name__=~"([^"]+)"\}', selector).group(1).split("|"))
    read = {name for query, _ in DEFAULT_QUERIES.values() for name in re.findall(r"([a-z_:][a-z0-9_:]*)\{", query)}
    assert read and read <= federated, read - federated


def test_prometheus_scrapes_the_pushgateway_the_worker_pushes_to_keeping_the_pushed_labels():
    job = next(j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"] if j["job_name"] == "pushgateway")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert job["honor_labels"] is True  # the pushed job, environment and service labels, not this job's
    assert job["static_configs"] == [{"targets": ["pushgateway:9091"]}]
    assert compose["worker"]["environment"]["TRIPGEN_PUSHGATEWAY_URL"] == "http://pushgateway:9091"
    assert compose["worker"]["depends_on"]["pushgateway"] == {"condition": "service_healthy"}
    assert "9091" in compose["pushgateway"]["healthcheck"]["test"][-1]
