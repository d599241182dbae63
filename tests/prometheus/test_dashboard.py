"""infra/grafana: the release dashboard is what delivery/metrics/dashboard.py generates, the SDK's models read it
back unchanged, promtool parses every panel's query, its thresholds are the policy's, and compose provisions it."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import heatmap, piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

from delivery.metrics.dashboard import panel_queries, promql_for_prometheus, render_dashboard
from delivery.policy.loader import load_policy, parse_policy
from tests.conftest import REPO
from tests.prometheus.test_kpi_rules import promtool

GRAFANA = REPO / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "releases.json"
POLICY_FILE = REPO / "policies" / "tripgen.yaml"
PROVISIONING_AT = "/etc/grafana/provisioning"  # Grafana's default paths.provisioning
OPTIONS = {"stat": stat.Options, "table": table.Options, "heatmap": heatmap.Options, "piechart": piechart.Options,
           "timeseries": timeseries.Options}
METRICS = {  # docs/kpi-metrics.md's release metrics the panels read, and Istio's request counter
    "tripgen_release_total", "tripgen_release_duration_seconds", "tripgen_deployment_status",
    "tripgen_release_history_duration_seconds", "tripgen_release_history_finished_timestamp_seconds",
    "tripgen_lead_time_seconds", "tripgen_time_to_restore_seconds", "tripgen_rollback_total",
    "tripgen_blue_green_switch_seconds", "tripgen_canary_error_ratio", "tripgen_quality_gate_passed",
    "istio_requests_total",
}


def panels(board: dict) -> dict[str, dict]:
    return {panel["title"]: panel for panel in board["panels"] if panel["type"] != "row"}


def steps(panel: dict) -> list[tuple[float | None, str]]:
    thresholds = panel["fieldConfig"]["defaults"].get("thresholds", {"steps": []})
    return [(None if s["value"] is None else round(s["value"], 9), s["color"]) for s in thresholds["steps"]]


def expected_steps(policy_text: str) -> dict[str, list[tuple[float | None, str]]]:
    kpi = parse_policy(policy_text).kpi
    lower_is_better = {
        "Deployment duration": kpi.max_deployment_duration.total_seconds(),
        "Canary error rate": kpi.max_canary_error_rate_percent / 100,
        "Blue-green switch time": kpi.max_blue_green_switch_time.total_seconds(),
        "Rollbacks per day per service": kpi.max_rollbacks_per_day,
        "Change failure rate (30d)": kpi.targets.max_rollback_rate_percent / 100,
        "Time to restore": kpi.targets.mttr.total_seconds(),
    }
    higher_is_better = {
        "Deployment success rate (30d)": kpi.min_deployment_success_rate_percent / 100,
        "Deployment frequency (7d)": kpi.targets.deployments_per_week,
    }
    return {**{title: [(None, "green"), (round(limit, 9), "red")] for title, limit in lower_is_better.items()},
            **{title: [(None, "red"), (round(limit, 9), "green")] for title, limit in higher_is_better.items()}}


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(DASHBOARD.read_text())


# --- the file and the generator ------------------------------------------------------------------------------------


def test_the_committed_dashboard_is_what_the_generator_prints():
    printed = subprocess.run([sys.executable, "-m", "delivery.metrics.dashboard"], cwd=REPO, capture_output=True,
                             text=True, check=True, timeout=120).stdout
    assert DASHBOARD.read_text() == printed == render_dashboard(load_policy(POLICY_FILE)), (
        "infra/grafana/dashboards/releases.json is stale: .venv/bin/python -m delivery.metrics.dashboard "
        "> infra/grafana/dashboards/releases.json")


def decoded_again(board: dict) -> tuple[Dashboard, dict]:
    register_default_plugins()  # the panel and query types, so that from_json builds their own models
    model = Dashboard.from_json(board)
    return model, json.loads(json.dumps(model, cls=JSONEncoder))


def test_the_sdk_models_read_the_dashboard_back_unchanged(board):
    model, again = decoded_again(board)
    assert again == board  # no key the models do not know, none they would add
    assert (model.uid, model.title) == ("tripgen-releases", "TripGen releases")
    for panel in model.panels:
        if isinstance(panel, RowPanel):
            continue
        assert isinstance(panel.options, OPTIONS[panel.type_val]), panel.title
        assert panel.targets and all(isinstance(t, prometheus.Dataquery) for t in panel.targets), panel.title


@pytest.mark.parametrize("breakage", [
    lambda b: b["panels"][1].update(fieldconfig=b["panels"][1].pop("fieldConfig")),
    lambda b: b["panels"][1]["options"].update(colourMode="background"),
    lambda b: b["panels"][1]["targets"][0].update(expression=b["panels"][1]["targets"][0].pop("expr")),
], ids=["misspelt panel key", "unknown stat option", "misspelt query key"])
def test_the_round_trip_rejects_a_broken_copy(board, breakage):
    broken = copy.deepcopy(board)
    breakage(broken)
    assert decoded_again(broken)[1] != broken


def test_the_seeds_panels_have_their_types(board):
    shown = panels(board)
    assert {title: shown[title]["type"] for title in (
        "Current deployment status", "Production deployment history", "Quality gate results",
        "Traffic distribution by version")} == {
        "Current deployment status": "stat", "Production deployment history": "table",
        "Quality gate results": "heatmap", "Traffic distribution by version": "piechart"}
    assert set(shown) >= {"Deployment success rate (30d)", "Rollbacks per day per service", "Deployment duration",
                          "Canary error rate", "Blue-green switch time", "Deployment frequency (7d)",
                          "Lead time for changes", "Change failure rate (30d)", "Time to restore"}


def test_the_deployment_status_maps_every_state_to_its_text(board):
    (mapping,) = panels(board)["Current deployment status"]["fieldConfig"]["defaults"]["mappings"]
    assert {value: option["text"] for value, option in mapping["options"].items()} == {
        "0": "Released", "1": "In progress", "2": "Rolled back", "3": "Stopped"}


def test_the_history_table_reads_instant_tables_and_names_its_columns(board):
    history = panels(board)["Production deployment history"]
    assert all(t["instant"] and t["format"] == "table" for t in history["targets"])
    assert [t["id"] for t in history["transformations"]] == ["merge", "organize"]
    renamed = history["transformations"][1]["options"]["renameByName"]
    assert set(renamed.values()) == {"Release", "Outcome", "Initiator", "Run", "Duration", "Finished"}
    units = {o["matcher"]["options"]: p["value"] for o in history["fieldConfig"]["overrides"]
             for p in o["properties"] if p["id"] == "unit"}
    assert units == {"Duration": "s", "Finished": "dateTimeAsIso"}


# --- the queries ---------------------------------------------------------------------------------------------------


def test_every_panel_queries_the_provisioned_prometheus(board):
    for title, panel in panels(board).items():
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, title
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), title
    assert {title for title, _ in panel_queries(board)} == set(panels(board))


def test_the_panels_read_exactly_the_documented_metrics(board):
    read = {name for _, expr in panel_queries(board) for name in re.findall(r"\b(?:tripgen|istio)_\w+", expr)}
    assert read == METRICS


def test_panel_queries_finds_the_panels_of_a_collapsed_row(board):
    collapsed = copy.deepcopy(board)
    row = next(p for p in collapsed["panels"] if p["type"] == "row")
    row.update(collapsed=True, panels=[collapsed["panels"].pop(1)])
    assert sorted(panel_queries(collapsed)) == sorted(panel_queries(board))


def test_promql_for_prometheus_replaces_grafanas_variables_with_fixed_durations():
    assert promql_for_prometheus("max_over_time(x[$__range])") == "max_over_time(x[6h])"
    assert promql_for_prometheus("rate(x[${__rate_interval}]) + rate(x[$__interval])") == "rate(x[2m]) + rate(x[30s])"
    assert promql_for_prometheus("x[$__range_ms]") == "x[$__range_ms]"  # not one of the three


def check_as_rules(exprs: list[str], work: Path) -> subprocess.CompletedProcess:
    """`promtool check rules` on a file with one recording rule per expression: it parses each with PromQL's parser."""
    rules = [{"record": f"tripgen:dashboard_query_{number}", "expr": expr} for number, expr in enumerate(exprs)]
    path = work / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return promtool("check", "rules", path)


def test_promtool_parses_every_query(board, tmp_path):
    exprs = [promql_for_prometheus(expr) for _, expr in panel_queries(board)]
    result = check_as_rules(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@pytest.mark.parametrize("expr", [
    "max by (service) (max_over_time(tripgen_canary_error_ratio[$__range]))",  # Grafana's variable left in
    "sum by (service) (tripgen_rollback_total",
], ids=["unsubstituted variable", "unclosed parenthesis"])
def test_promtool_rejects_a_broken_query(tmp_path, expr):
    result = check_as_rules(["tripgen_deployment_status", expr], tmp_path)
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr, result.stdout + result.stderr


# --- thresholds ----------------------------------------------------------------------------------------------------


def test_every_threshold_shown_is_the_policy_number(board):
    shown = {title: steps(panel) for title, panel in panels(board).items() if steps(panel)}
    assert shown == expected_steps(POLICY_FILE.read_text())


def test_the_thresholds_follow_a_changed_policy():
    text = POLICY_FILE.read_text()
    for key, value in {"min_deployment_success_rate_percent": "90", "max_rollbacks_per_day": "4",
                       "max_deployment_duration": "45m", "max_canary_error_rate_percent": "1.5",
                       "max_blue_green_switch_time": "2m30s", "deployments_per_week": "3",
                       "max_rollback_rate_percent": "8", "mttr": "40m"}.items():
        text, count = re.subn(rf"(?m)^(\s+{key}:) \S+", rf"\1 {value}", text)
        assert count == 1, key
    changed = expected_steps(text)
    assert changed != expected_steps(POLICY_FILE.read_text())
    board = json.loads(render_dashboard(parse_policy(text)))
    assert {title: steps(panel) for title, panel in panels(board).items() if steps(panel)} == changed


# --- provisioning and compose --------------------------------------------------------------------------------------


def test_compose_mounts_the_provisioning_and_the_dashboards_where_grafana_looks():
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+", service["image"])
    assert service["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tripgen.yml").read_text())["providers"]
    assert f"./infra/grafana/provisioning:{PROVISIONING_AT}:ro" in service["volumes"]
    assert f"./infra/grafana/dashboards:{provider['options']['path']}:ro" in service["volumes"]
    assert provider["type"] == "file"


def test_the_provisioned_data_source_is_the_one_the_panels_name(board):
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert (source["type"], source["uid"], source["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    assert {p["datasource"]["uid"] for p in panels(board).values()} == {source["uid"]}
