"""The Grafana dashboard of releases, R-KPI and DORA keys (infra/grafana/dashboards/releases.json), built with
grafana-foundation-sdk from the policy's `kpi`; regenerate it with `python -m delivery.metrics.dashboard > …`.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta

from grafana_foundation_sdk.builders import dashboard, heatmap, piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig, HideSeriesConfig, ReduceDataOptions, TableSortByFieldState, VizLegendOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef, DataTransformerConfig, DynamicConfigValue, Threshold, ThresholdsMode, ValueMap, ValueMappingResult,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.piechart import PieChartLabels, PieChartLegendValues, PieChartType
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from delivery.metrics.kpi_rules import kpi_alerts
from delivery.policy.loader import load_policy
from delivery.policy.models import Kpi, Policy
from delivery.units import format_duration

UID = "tripgen-releases"
TITLE = "TripGen releases"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")  # infra/grafana/provisioning/datasources
DEPLOYMENT_FREQUENCY_WINDOW = timedelta(days=7)  # DORA's deployments per week
# What promql_for_prometheus puts for Grafana's own variables: about what the default 6 hours give.
GRAFANA_DURATIONS = {"__range": "6h", "__rate_interval": "2m", "__interval": "30s"}
SHOWN = HideSeriesConfig().legend(False).tooltip(False).viz(False)  # Grafana's default `custom.hideFrom`
ISTIO_REQUESTS = 'istio_requests_total{reporter="destination"}'  # each request once: as its destination saw it

DEPLOYMENT_STATUS = {0: ("Released", "green"), 1: ("In progress", "blue"), 2: ("Rolled back", "red"),
                     3: ("Stopped", "orange")}
OUTCOME_COLORS = {"released": "green", "rolled_back": "red", "stopped": "orange"}
LEGEND = VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST).placement(
    common.LegendPlacement.BOTTOM)


def _query(expr: str, legend: str = "", ref_id: str = "A", instant: bool = True) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    query = query.instant() if instant else query.range()
    return query.legend_format(legend) if legend else query


def _steps(base: str, limit: float, over: str) -> dashboard.ThresholdsConfig:
    """`base` below the policy's `limit`, `over` from it on."""
    steps = [Threshold(None, base), Threshold(limit, over)]
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def _stat(title: str, description: str, query: prometheus.Dataquery, unit: str) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(DATASOURCE).with_target(query).unit(unit)
            .height(5).span(6).graph_mode(common.BigValueGraphMode.NONE)
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False)))


def _rule_query(kpi: Kpi, alert: str) -> str:
    """The expression of kpi_rules' `alert` without its comparison with the policy's threshold."""
    expr = next(rule["expr"] for rule in kpi_alerts(kpi) if rule["alert"] == alert)
    return re.fullmatch(r"(.+) [<>] [\d.]+", expr).group(1)


def status_row() -> list:
    """The latest release run and the history of the last runs."""
    mappings = [ValueMap({str(value): ValueMappingResult(text=text, color=color, index=value)
                          for value, (text, color) in DEPLOYMENT_STATUS.items()})]
    status = (_stat("Current deployment status", "The latest release run per environment (tripgen_deployment_status).",
                    _query("tripgen_deployment_status", "{{environment}} {{release}}"), "none")
              .mappings(mappings).color_mode(common.BigValueColorMode.BACKGROUND).height(9))
    by_run = "max by (release, outcome, initiator, run)"
    columns = {"release": "Release", "outcome": "Outcome", "initiator": "Initiator", "run": "Run",
               "Value #A": "Duration", "Value #B": "Finished"}
    outcome_colors = [ValueMap({outcome: ValueMappingResult(color=color, index=index)
                                for index, (outcome, color) in enumerate(OUTCOME_COLORS.items())})]
    history = (
        table.Panel().title("Production deployment history").datasource(DATASOURCE).height(9).span(18)
        .description("The last release runs to production: outcome, who started them, duration and end.")
        .with_target(_query(f'{by_run} (tripgen_release_history_duration_seconds{{environment="production"}})',
                            "", "A").format(PromQueryFormat.TABLE))
        .with_target(_query(f'{by_run} (tripgen_release_history_finished_timestamp_seconds{{environment="production"}})'
                            " * 1000", "", "B").format(PromQueryFormat.TABLE))  # Grafana's dates are in ms
        .with_transformation(DataTransformerConfig("merge", options={}))
        .with_transformation(DataTransformerConfig("organize", options={
            "excludeByName": {"Time": True}, "renameByName": columns,
            "indexByName": {name: index for index, name in enumerate(columns)}}))
        .override_by_name("Duration", [DynamicConfigValue("unit", "s")])
        .override_by_name("Finished", [DynamicConfigValue("unit", "dateTimeAsIso")])
        .override_by_name("Outcome", [DynamicConfigValue("mappings", outcome_colors),
                                      DynamicConfigValue("custom.cellOptions", {"type": "color-text"})])
        .sort_by([TableSortByFieldState().display_name("Finished").desc(True)]))
    return [status, history]


def kpi_row(kpi: Kpi) -> list:
    """R-KPI: each panel colored by the policy's threshold for it."""
    success = (_stat("Deployment success rate (30d)", "Releases that reached production and were not rolled back.",
                     _query(_rule_query(kpi, "TripgenDeploymentSuccessRateLow")), "percentunit")
               .thresholds(_steps("red", kpi.min_deployment_success_rate_percent / 100, "green")))
    duration = (_stat("Deployment duration", "The last finished release run, start to end.",
                      _query("tripgen_release_duration_seconds", "{{environment}}"), "s")
                .thresholds(_steps("green", kpi.max_deployment_duration.total_seconds(), "red")))
    canary = (_stat("Canary error rate", "The highest error ratio of each service's canaries in the time range.",
                    _query("max by (service) (max_over_time(tripgen_canary_error_ratio[$__range]))", "{{service}}"),
                    "percentunit")
              .thresholds(_steps("green", kpi.max_canary_error_rate_percent / 100, "red")))
    switch = (_stat("Blue-green switch time", "Each service's last switch to the new color.",
                    _query("max by (service) (tripgen_blue_green_switch_seconds)", "{{service}}"), "s")
              .thresholds(_steps("green", kpi.max_blue_green_switch_time.total_seconds(), "red")))
    rollbacks = (
        timeseries.Panel().title("Rollbacks per day per service").datasource(DATASOURCE).height(8).span(12)
        .description("Rollbacks in the 24 hours before each point; the dashed line is the policy's daily limit.")
        .with_target(_query(_rule_query(kpi, "TripgenRollbacksTooFrequent"), "{{service}}", instant=False))
        .unit("short").decimals(0).thresholds(_steps("green", kpi.max_rollbacks_per_day, "red"))
        .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED))
        .legend(LEGEND))
    gates = (
        heatmap.Panel().title("Quality gate results").datasource(DATASOURCE).height(8).span(12)
        .description("Each gate of the latest release over time: green passed, red not.")
        .with_target(_query("max by (gate) (tripgen_quality_gate_passed)", "{{gate}}", instant=False))
        .calculate(False)
        .color(heatmap.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme("RdYlGn").min(0).max(1).steps(2))
        .show_value(common.VisibilityMode.NEVER).show_tooltip().hide_from(SHOWN)
        .filter_values(heatmap.FilterValueRange()))  # the default hides cells <= 1e-9: the failed gates
    return [success, duration, canary, switch, rollbacks, gates]


def traffic_row() -> list:
    """Istio's view: which version serves the requests."""
    return [
        piechart.Panel().title("Traffic distribution by version").datasource(DATASOURCE).height(8).span(8)
        .description("Requests per second to each destination version, averaged over the time range.")
        .with_target(_query(f"sum by (destination_version) (rate({ISTIO_REQUESTS}[$__range]))",
                            "{{destination_version}}"))
        .unit("reqps").pie_type(PieChartType.DONUT).display_labels([PieChartLabels.PERCENT]).hide_from(SHOWN)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .legend(piechart.PieChartLegendOptions().show_legend(True).values([PieChartLegendValues.PERCENT])
                .display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.RIGHT)),
        timeseries.Panel().title("Requests by service and version").datasource(DATASOURCE).height(8).span(16)
        .description("Requests per second to each service's versions: a canary's share grows stage by stage.")
        .with_target(_query(f"sum by (destination_service_name, destination_version) "
                            f"(rate({ISTIO_REQUESTS}[$__rate_interval]))",
                            "{{destination_service_name}} {{destination_version}}", instant=False))
        .unit("reqps").fill_opacity(10).legend(LEGEND),
    ]


def dora_row(kpi: Kpi) -> list:
    """DORA's four keys, against the policy's `kpi.targets` where it has one."""
    targets, week = kpi.targets, format_duration(DEPLOYMENT_FREQUENCY_WINDOW)
    failure_rate = _rule_query(kpi, "TripgenDeploymentSuccessRateLow").removeprefix("1 - ")
    return [
        _stat("Deployment frequency (7d)", "Releases to production in the last 7 days.",
              _query(f'sum by (environment) (round(increase(tripgen_release_total{{outcome="released"}}[{week}])))',
                     "{{environment}}"), "short")
        .thresholds(_steps("red", targets.deployments_per_week, "green")),
        _stat("Lead time for changes", "The last released run: from the tag's commit to the release's end.",
              _query("tripgen_lead_time_seconds", "{{environment}}"), "s").color_mode(common.BigValueColorMode.NONE),
        _stat("Change failure rate (30d)", "Releases that reached production and were rolled back.",
              _query(failure_rate, "{{environment}}"), "percentunit")
        .thresholds(_steps("green", targets.max_rollback_rate_percent / 100, "red")),
        _stat("Time to restore", "The last rolled-back run: from the failure detected to production restored.",
              _query("tripgen_time_to_restore_seconds", "{{environment}}"), "s")
        .thresholds(_steps("green", targets.mttr.total_seconds(), "red")),
    ]


def build_dashboard(policy: Policy) -> dashboard.Dashboard:
    """The dashboard builder: one row per group of panels, thresholds from `policy.kpi`."""
    board = (dashboard.Dashboard(TITLE).uid(UID).tags(["tripgen", "releases", "kpi", "dora"]).readonly()
             .description("TripGen production releases: status, history, R-KPI and DORA keys (docs/kpi-metrics.md).")
             .time("now-6h", "now").refresh("1m").timezone("browser"))
    for title, panels in (("Release status", status_row()), ("KPIs (R-KPI)", kpi_row(policy.kpi)),
                          ("Traffic", traffic_row()), ("DORA keys", dora_row(policy.kpi))):
        board.with_row(dashboard.Row(title))
        for panel in panels:
            board.with_panel(panel)
    return board


def render_dashboard(policy: Policy) -> str:
    """The dashboard's JSON text, panels numbered in order."""
    model = build_dashboard(policy).build()
    for number, panel in enumerate(model.panels, 1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def panel_queries(dashboard_json: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, rows' collapsed panels included."""
    panels = [p for top in dashboard_json["panels"] for p in (top, *top.get("panels", []))]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", [])]


def promql_for_prometheus(expr: str) -> str:
    """`expr` with Grafana's $__range, $__rate_interval and $__interval replaced by GRAFANA_DURATIONS."""
    return re.sub(r"\$\{?(__range|__rate_interval|__interval)\b\}?", lambda m: GRAFANA_DURATIONS[m.group(1)], expr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(render_dashboard(load_policy(args[0] if args else "policies/tripgen.yaml")))


if __name__ == "__main__":
    main()
