"""Each broken policy exits 2 and names the problem by its path in the file."""

import copy

import pytest
import yaml
from click.testing import CliRunner

from delivery.cli import cli
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "policies" / "tripgen.yaml").read_text())


def _run_check(tmp_path, data=None, text=None):
    path = tmp_path / "policy.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return CliRunner().invoke(cli, ["policy", "check", str(path)])


def _broken(change):
    data = copy.deepcopy(BASE)
    change(data)
    return data


CASES = {
    "wrong type": (
        lambda d: d["services"][0].update(replicas="three"),
        "services[0].replicas: must be a valid integer",
    ),
    "negative duration": (
        lambda d: d["watch"].update(interval="-5s"),
        "watch.interval: must not be negative",
    ),
    "not a duration": (
        lambda d: d["approvals"].update(timeout="one day"),
        "approvals.timeout: 'one day' is not a duration",
    ),
    "zero duration": (
        lambda d: d["canary"]["analysis"].update(interval="0s"),
        "canary.analysis.interval: must be longer than zero",
    ),
    "weight over 100": (
        lambda d: d["canary"]["stages"][2].update(weight=150),
        "canary.stages[2].weight: must be between 0 and 100, got 150",
    ),
    "unknown service in a group": (
        lambda d: d["deployment_order"]["groups"][1]["services"].append("payment-service"),
        "deployment_order.groups[1].services[1]: unknown service 'payment-service'",
    ),
    "service in two groups": (
        lambda d: d["deployment_order"]["groups"][2]["services"].append("user-service"),
        "deployment_order.groups[2].services[1]: 'user-service' is already in group 'independent'",
    ),
    "service in no group": (
        lambda d: d["deployment_order"]["groups"].pop(),
        "services[2].name: 'ai-service' is in no deployment group",
    ),
    "unknown key": (
        lambda d: d["canary"]["analysis"].update(treshold=3),
        "canary.analysis.treshold: unknown key 'treshold': did you mean 'threshold'?",
    ),
    "more approvers than members": (
        lambda d: d["approvals"]["groups"].update({"tech-leads": ["lead.choi"], "devops-team": []}),
        "approvals.production.approvers: needs 2 approvers but tech-leads, devops-team have only 1 member(s)",
    ),
    "unknown approver group": (
        lambda d: d["approvals"]["hotfix"].update(groups=["release-team"]),
        "approvals.hotfix.groups[0]: unknown group 'release-team'",
    ),
    "stages not increasing": (
        lambda d: d["canary"]["stages"][1].update(weight=5),
        "canary.stages[1].weight: must be greater than the previous stage's 5",
    ),
    "bad cron": (
        lambda d: d["sync_window"].update(schedule="every monday"),
        "sync_window.schedule: 'every monday' is not a cron expression",
    ),
    "bad time zone": (
        lambda d: d["sync_window"].update(timezone="Korea/Nowhere"),
        "sync_window.timezone: unknown time zone 'Korea/Nowhere'",
    ),
    "unknown template variable": (
        lambda d: d.update(metric_templates={"odd": {"query": "up{job=\"{{ job }}\"}", "unit": "count"}}),
        "metric_templates.odd.query: unknown variable(s) job",
    ),
    "not a subscription id": (
        lambda d: d["cluster"]["azure"].update(subscription_id="tripgen-prod"),
        "cluster.azure.subscription_id: 'tripgen-prod' is not a subscription id (a GUID",
    ),
    "unknown key in the cluster": (
        lambda d: d["cluster"]["azure"].update(resource_grop="rg-tripgen-prod"),
        "cluster.azure.resource_grop: unknown key 'resource_grop': did you mean 'resource_group'?",
    ),
    "unknown strategy": (
        lambda d: d["environments"]["production"].update(strategy="big-bang"),
        "environments.production.strategy: must be 'rolling', 'blue-green' or 'canary', got 'big-bang'",
    ),
    "not an e-mail address": (
        lambda d: d["compliance"]["report_recipients"].append("audit team"),
        "compliance.report_recipients[2]: 'audit team' is not an e-mail address (name@domain)",
    ),
    "nobody gets the compliance report": (
        lambda d: d["compliance"].update(report_recipients=[]),
        "compliance.report_recipients: List should have at least 1 item after validation, not 0",
    ),
    "an approver with two channels": (
        lambda d: d["approvals"]["approver_channels"].update({"ops.lee": {"email": "ops.lee@tripgen.com", "slack": "U024BE7LH"}}),
        "approvals.approver_channels.ops.lee: needs exactly one channel: email (an address) or slack (a user id)",
    ),
    "an approver with no channel": (
        lambda d: d["approvals"]["approver_channels"].update({"lead.jung": {}}),
        "approvals.approver_channels.lead.jung: needs exactly one channel",
    ),
    "an approver's address is not one": (
        lambda d: d["approvals"]["approver_channels"].update({"sec.yoon": {"email": "sec yoon"}}),
        "approvals.approver_channels.sec.yoon.email: 'sec yoon' is not an e-mail address (name@domain)",
    ),
    "not a Slack member id": (
        lambda d: d["approvals"]["approver_channels"].update({"dev.kim": {"slack": "@dev.kim"}}),
        "approvals.approver_channels.dev.kim.slack: '@dev.kim' is not a Slack user id",
    ),
    "an unknown channel": (
        lambda d: d["approvals"]["approver_channels"].update({"dev.park": {"sms": "+82 10 0000 0000"}}),
        "approvals.approver_channels.dev.park.sms: unknown key",
    ),
    "a channel for someone in no group": (
        lambda d: d["approvals"]["approver_channels"].update({"mallory": {"email": "mallory@example.com"}}),
        "approvals.approver_channels.mallory: 'mallory' is in no approver group (developers, tech-leads, devops-team, security-team)",
    ),
    "commit author rule not a yes or no": (
        lambda d: d["approvals"].update(commit_author_may_approve="sometimes"),
        "approvals.commit_author_may_approve: must be a valid boolean, unable to interpret input, got 'sometimes'",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_broken_policy_exits_2_naming_the_path(tmp_path, case):
    change, expected = CASES[case]
    result = _run_check(tmp_path, _broken(change))
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_problems_carry_line_numbers(tmp_path):
    text = (REPO / "policies" / "tripgen.yaml").read_text().replace("max_weight: 50", "max_weight: 500")
    result = _run_check(tmp_path, text=text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "max_weight: 500" in row)
    assert f"policy.yaml:{line}: canary.analysis.max_weight: must be between 0 and 100" in result.output


def test_an_approver_in_no_group_is_named_at_their_line(tmp_path):
    data = _broken(lambda d: d["approvals"]["approver_channels"].update({"mallory": {"email": "mallory@example.com"}}))
    result = _run_check(tmp_path, data)
    line = int(result.output.split("policy.yaml:")[1].split(":")[0])
    assert "mallory" in (tmp_path / "policy.yaml").read_text().splitlines()[line - 1]


def test_a_slack_member_id_is_a_channel(tmp_path):
    result = _run_check(tmp_path, _broken(lambda d: d["approvals"]["approver_channels"].update({"ops.lee": {"slack": "U024BE7LH"}})))
    assert result.exit_code == 0, result.output
    assert "approval codes to 6 approver(s) by e-mail and 1 by Slack DM" in result.output


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    def two_problems(d):
        d["services"][0].update(port=0)
        d["kpi"].update(max_rollbacks_per_day=-1)

    result = _run_check(tmp_path, _broken(two_problems))
    assert result.exit_code == 2
    assert "services[0].port" in result.output and "kpi.max_rollbacks_per_day" in result.output
    assert "2 problem(s)" in result.output


def test_invalid_yaml_and_missing_file(tmp_path):
    result = _run_check(tmp_path, text="canary: [unclosed")
    assert result.exit_code == 2 and "not valid YAML" in result.output
    result = CliRunner().invoke(cli, ["policy", "check", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2 and "cannot read the file" in result.output


def test_usage_errors_exit_2():
    assert CliRunner().invoke(cli, ["policy", "check"]).exit_code == 2
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2


def test_regions_need_exactly_one_primary_and_print_the_order(tmp_path):
    two = [{"name": "korea-central", "role": "primary"}, {"name": "korea-south", "role": "primary"}]
    refused = _run_check(tmp_path, _broken(lambda d: d.update(regions=two)))
    assert refused.exit_code == 2 and "name exactly one region with role: primary" in refused.output
    ordered = [{"name": "korea-central", "role": "primary"}, {"name": "korea-south", "role": "dr"}]
    accepted = _run_check(tmp_path, _broken(lambda d: d.update(regions=ordered)))
    assert accepted.exit_code == 0, accepted.output
    assert ("korea-central (primary, the cluster above), then korea-south (TRIPGEN_REGION_ENDPOINTS) once the primary's "
            "watch passed; a failure in any region restores every region") in accepted.output
