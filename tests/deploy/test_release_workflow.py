"""The release workflow's build job (issue 17, R-GHA), read as GitHub reads it: its matrix is the policy's services
(the services step run with bash against the policy), the trigger waits for every service's build and scan, the
gating Trivy run fails on HIGH or CRITICAL, Azure is reached by OIDC only, the images are
acrtrpgenprod.azurecr.io/<service>:<tag>, and no workflow writes a secret literally.

Each rule is a function returning problems, so a broken copy of the workflow shows that the rule can fail.
actionlint and SchemaStore's workflow schema run on every workflow in test_schemas.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from ruamel.yaml import YAML

from tests.conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
RELEASE = WORKFLOWS / "release.yml"
POLICY = REPO / "policies" / "tripgen.yaml"
ACR = "acrtrpgenprod"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH_STRING|API_KEY|CREDS|CREDENTIALS", re.IGNORECASE)
PINNED = re.compile(r"[^@]+@[0-9a-f]{40}")


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture
def workflow() -> dict:
    return load(RELEASE)


@pytest.fixture(scope="module")
def policy() -> dict:
    return yaml.safe_load(POLICY.read_text())


def uses(step: dict, action: str) -> bool:
    return step.get("uses", "").split("@")[0] == action


def steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job.get("steps", []) if uses(step, action)]


def needs(job: dict) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def run_script(script: str, cwd: Path, env: dict[str, str], path_first: Path | None = None) -> subprocess.CompletedProcess:
    """Bash runs a step's script as GitHub runs `run:` (bash -e -o pipefail), the project's Python on PATH."""
    path = os.pathsep.join(p for p in (str(path_first or ""), os.path.dirname(sys.executable), os.environ["PATH"]) if p)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, capture_output=True,
                          text=True, env={"PATH": path, "HOME": os.environ["HOME"], **env}, timeout=120)


def services_step(workflow: dict) -> dict:
    job = workflow["jobs"]["services"]
    output = EXPRESSION.fullmatch(job["outputs"]["services"]).group(1)
    step_id = re.fullmatch(r"steps\.([\w-]+)\.outputs\.services", output).group(1)
    return next(step for step in job["steps"] if step.get("id") == step_id)


def matrix_from(workflow: dict, cwd: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    """The services step run in `cwd` (a checkout holding policies/tripgen.yaml); its `services` output, parsed."""
    output = tmp_path / "github-output"
    output.write_text("")
    done = run_script(services_step(workflow)["run"], cwd, {"GITHUB_OUTPUT": str(output)})
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done, (json.loads(outputs["services"]) if done.returncode == 0 else None)


# --- the rules -------------------------------------------------------------------------------------------------

def matrix_problems(workflow: dict) -> list[str]:
    """The build job's matrix is the services job's output, nothing written by hand beside it."""
    build = workflow["jobs"].get("build", {})
    matrix = build.get("strategy", {}).get("matrix", {})
    problems = []
    if "services" not in needs(build):
        problems.append(f"build needs {needs(build)}, not the services job")
    if matrix != {"service": "${{ fromJSON(needs.services.outputs.services) }}"}:
        problems.append(f"build's matrix is {matrix}, not the services job's output")
    return problems


def ordering_problems(workflow: dict) -> list[str]:
    """The trigger runs only after every service is built, pushed and scanned (a failed leg skips it)."""
    jobs = workflow["jobs"]
    problems = []
    trigger = [name for name, job in jobs.items()
               if any("deployments.trigger release/" in str(step.get("run", "")) for step in job.get("steps", []))]
    if trigger != ["release"]:
        return [f"the release is triggered by {trigger}, not by one job `release`"]
    release = jobs["release"]
    if "build" not in needs(release):
        problems.append(f"release needs {needs(release)}, not build")
    if "if" in release:
        problems.append(f"release runs `if: {release['if']}`: it could run after a failed build or scan")
    build = jobs.get("build", {})
    for what, action in [("build and push", "docker/build-push-action"), ("scan", "aquasecurity/trivy-action")]:
        if not steps_using(build, action):
            problems.append(f"the build job has no {what} step ({action})")
    if build.get("continue-on-error"):
        problems.append("the build job continues on error")
    for step in build.get("steps", []):
        if step.get("continue-on-error"):
            problems.append(f"step {step.get('name') or step.get('uses')} continues on error")
        if "if" in step and uses(step, "aquasecurity/trivy-action"):
            problems.append(f"step {step.get('name')} runs only `if: {step['if']}`")
    return problems


def scan_problems(workflow: dict, policy: dict) -> list[str]:
    """Trivy scans the pushed digest: a table run for the log, and a JSON run at the security gate's report path that
    fails (exit code 1) on HIGH or CRITICAL."""
    build = workflow["jobs"].get("build", {})
    (push,) = steps_using(build, "docker/build-push-action") or [{}]
    by_digest = f"{ACR}.azurecr.io/${{{{ matrix.service }}}}@${{{{ steps.{push.get('id')}.outputs.digest }}}}"
    scans = steps_using(build, "aquasecurity/trivy-action")
    problems = [f"{s.get('name')}: {s['uses']} is not pinned to a commit" for s in scans if not PINNED.fullmatch(s["uses"])]
    problems += [f"{s.get('name')}: scans {s.get('with', {}).get('image-ref')}, not {by_digest}"
                 for s in scans if s.get("with", {}).get("image-ref") != by_digest]
    formats = [s.get("with", {}).get("format", "table") for s in scans]
    if "table" not in formats:
        problems.append("no Trivy table for the log")
    gating = [s.get("with", {}) for s in scans if s.get("with", {}).get("format") == "json"]
    if len(gating) != 1:
        return problems + [f"{len(gating)} Trivy JSON runs, not one"]
    (gate,) = gating
    report = policy["quality_gates"]["security_scan"]["report"].format(
        tag="${{ github.ref_name }}", service="${{ matrix.service }}")
    if gate.get("output") != report:
        problems.append(f"the JSON report goes to {gate.get('output')}, not the policy's {report}")
    if str(gate.get("exit-code")) != "1":
        problems.append(f"the gating scan's exit-code is {gate.get('exit-code')!r}, not 1")
    if sorted(str(gate.get("severity", "")).replace(" ", "").split(",")) != ["CRITICAL", "HIGH"]:
        problems.append(f"the gating scan fails on {gate.get('severity')!r}, not HIGH,CRITICAL")
    return problems


def oidc_problems(workflow: dict) -> list[str]:
    """Azure by OIDC: the build job may ask for an ID token, azure/login gets ids from `vars` and no secret."""
    build = workflow["jobs"].get("build", {})
    problems = []
    if not isinstance(build.get("environment"), str):
        problems.append(f"build's environment is {build.get('environment')!r}: the federated credential's subject names one")
    if build.get("permissions") != {"id-token": "write", "contents": "read"}:
        problems.append(f"build's permissions are {build.get('permissions')}, not id-token: write, contents: read")
    logins = steps_using(build, "azure/login")
    if [s["uses"] for s in logins] != ["azure/login@v2"]:
        problems.append(f"azure/login steps: {[s['uses'] for s in logins]}, not one azure/login@v2")
    wanted = {"client-id": "${{ vars.AZURE_CLIENT_ID }}", "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
              "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}"}
    problems += [f"azure/login with {login.get('with')}, not {wanted}" for login in logins if login.get("with") != wanted]
    if "secrets." in json.dumps(build):
        problems.append("the build job reads a secret: Azure is reached by OIDC only")
    return problems


def image_problems(workflow: dict, policy: dict) -> list[str]:
    """Pushed as <policy registry>/<service>:<tag> with provenance and SBOM after az acr login; the digest recorded."""
    build = workflow["jobs"].get("build", {})
    steps = build.get("steps", [])
    problems = []
    if policy["registry"] != f"{ACR}.azurecr.io":
        problems.append(f"the policy's registry is {policy['registry']}, the workflow pushes to {ACR}.azurecr.io")
    pushes = steps_using(build, "docker/build-push-action")
    if [s["uses"] for s in pushes] != ["docker/build-push-action@v6"]:
        return problems + [f"build-push steps: {[s['uses'] for s in pushes]}"]
    (push,) = pushes
    args = push.get("with", {})
    if args.get("tags") != f"{ACR}.azurecr.io/${{{{ matrix.service }}}}:${{{{ github.ref_name }}}}":
        problems.append(f"pushes {args.get('tags')}")
    if args.get("push") is not True or not args.get("provenance") or args.get("sbom") is not True:
        problems.append(f"push {args.get('push')}, provenance {args.get('provenance')}, sbom {args.get('sbom')}")
    if args.get("context") != "services/${{ matrix.service }}" or args.get("file") != "infra/images/java-service.Dockerfile":
        problems.append(f"builds {args.get('context')} with {args.get('file')}")
    at = steps.index(push)
    before = steps[:at]
    if not any(str(s.get("run", "")).split() == ["az", "acr", "login", "--name", ACR] for s in before) \
            or not any(uses(s, "azure/login") for s in before) or not any(uses(s, "docker/setup-buildx-action") for s in before):
        problems.append("azure/login, az acr login and setup-buildx do not all come before the push")
    digest = f"${{{{ steps.{push.get('id')}.outputs.digest }}}}"
    recorders = [i for i, s in enumerate(steps) if digest in s.get("env", {}).values()]
    artifact = [i for i, s in enumerate(steps) if uses(s, "actions/upload-artifact")]
    if not recorders or not any(i > recorders[0] for i in artifact):
        problems.append("the pushed digest is not recorded into an artifact")
    return problems


def secret_problems(workflow: dict) -> list[str]:
    """No secret written literally: a secret-like env or input is a whole `${{ secrets.NAME }}`, Azure inputs carry no
    secret at all, and no run script interpolates an expression (values reach scripts through env)."""
    problems = []
    for job_name, job in workflow["jobs"].items():
        for where, mapping in [("env", job.get("env", {}))] + [
                (f"{step.get('name') or step.get('uses')} {kind}", step.get(kind) or {})
                for step in job.get("steps", []) for kind in ("env", "with")]:
            for key, value in mapping.items():
                if SECRET_KEY.search(key) and not re.fullmatch(r"\$\{\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}", str(value)):
                    problems.append(f"{job_name}: {where} {key} is written literally: {value!r}")
        for step in job.get("steps", []):
            if uses(step, "azure/login") and {"client-secret", "creds", "password"} & set(step.get("with") or {}):
                problems.append(f"{job_name}: azure/login takes a stored secret, not OIDC")
            if "${{" in str(step.get("run", "")):
                problems.append(f"{job_name}: {step.get('name') or 'a run step'} interpolates an expression into its script")
    return problems


# --- the workflow as it is -------------------------------------------------------------------------------------

def test_the_build_matrix_is_the_policys_services(workflow, policy, tmp_path):
    done, services = matrix_from(workflow, REPO, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert services == [service["name"] for service in policy["services"]]
    assert matrix_problems(workflow) == []


def test_the_services_step_reads_the_policy_it_finds(workflow, policy, tmp_path):
    """A checkout whose policy has no location-service builds three services; one whose policy is broken builds none."""
    edited = copy.deepcopy(policy)
    edited["services"] = [s for s in edited["services"] if s["name"] != "location-service"]
    for group in edited["deployment_order"]["groups"]:
        group["services"] = [s for s in group["services"] if s != "location-service"]
    (tmp_path / "checkout" / "policies").mkdir(parents=True)
    (tmp_path / "checkout" / "policies" / "tripgen.yaml").write_text(yaml.safe_dump(edited))
    done, services = matrix_from(workflow, tmp_path / "checkout", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert services == ["user-service", "trip-service", "ai-service"]

    edited["services"][0]["replicas"] = "three"
    (tmp_path / "checkout" / "policies" / "tripgen.yaml").write_text(yaml.safe_dump(edited))
    done, services = matrix_from(workflow, tmp_path / "checkout", tmp_path)
    assert done.returncode != 0 and services is None
    assert "replicas" in done.stderr


def test_the_release_is_triggered_only_after_every_service_is_built_and_scanned(workflow):
    assert ordering_problems(workflow) == []


def test_the_gating_trivy_scan_fails_on_high_or_critical(workflow, policy):
    assert scan_problems(workflow, policy) == []


def test_azure_is_reached_by_oidc_only(workflow):
    assert oidc_problems(workflow) == []


def test_the_readme_names_the_federated_credential_and_the_variables_the_workflow_uses(workflow):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## GitHub Actions\n"):readme.index("## Notifications and incidents\n")]
    assert f"`repo:<owner>/<repo>:environment:{workflow['jobs']['build']['environment']}`" in section
    used = set(re.findall(r"vars\.([A-Z_]+)", RELEASE.read_text()))
    assert used == {"PREFECT_API_URL", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "REPORTS_STORAGE_ACCOUNT"}
    assert [name for name in sorted(used) if f"`{name}`" not in section] == []


def test_images_are_pushed_to_the_policys_registry_with_the_tag_and_their_digest_is_recorded(workflow, policy):
    assert image_problems(workflow, policy) == []


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_no_workflow_writes_a_secret_literally(path):
    assert secret_problems(load(path)) == []


def test_the_reports_go_to_the_container_the_gates_read(workflow, policy, tmp_path):
    """The upload step, run with bash against an `az` that records its arguments: the policy's report folder of the
    tag, and the tag's migrations when it has some, go to container `reports` under their own relative paths (the
    names the gates read with TRIPGEN_REPORTS the container's URL), as the signed-in identity (no key)."""
    build = workflow["jobs"]["build"]
    (upload,) = [s for s in build["steps"] if "upload-batch" in str(s.get("run", ""))]
    scan = next(s for s in steps_using(build, "aquasecurity/trivy-action") if s["with"].get("format") == "json")
    assert upload["if"] == f"${{{{ !cancelled() && (steps.{scan['id']}.outcome == 'success' || steps.{scan['id']}.outcome == 'failure') }}}}"
    assert upload["env"] == {"REPORTS_STORAGE_ACCOUNT": "${{ vars.REPORTS_STORAGE_ACCOUNT }}"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text('#!/bin/sh\necho "$*" >> "$AZ_CALLS"\n')
    (bin_dir / "az").chmod(0o755)
    report_dir = Path(policy["quality_gates"]["security_scan"]["report"].format(tag="v1.2.0", service="trip-service")).parent

    def uploads(checkout: Path) -> list[dict[str, str]]:
        calls = checkout / "az-calls"
        done = run_script(upload["run"], checkout, {"TAG": "v1.2.0", "SERVICE": "trip-service", "AZ_CALLS": str(calls),
                                                    "REPORTS_STORAGE_ACCOUNT": "sttripgenreports"}, path_first=bin_dir)
        assert done.returncode == 0, done.stderr
        made = []
        for line in calls.read_text().splitlines():
            args = line.split()
            assert args[:3] == ["storage", "blob", "upload-batch"], line
            made.append(dict(zip(args[3::2], args[4::2])))
        return made

    def batch(folder: str) -> dict[str, str]:
        return {"--auth-mode": "login", "--account-name": "sttripgenreports", "-d": "reports",
                "--destination-path": folder, "-s": folder, "--overwrite": "true"}

    (tmp_path / "without").mkdir()
    assert uploads(tmp_path / "without") == [batch(str(report_dir))]
    (tmp_path / "with" / "migrations" / "v1.2.0").mkdir(parents=True)
    assert uploads(tmp_path / "with") == [batch(str(report_dir)), batch("migrations/v1.2.0")]


# --- broken copies: each rule fails when it should -------------------------------------------------------------

def scan_step(w: dict, fmt: str) -> dict:
    return next(s for s in steps_using(w["jobs"]["build"], "aquasecurity/trivy-action") if s["with"].get("format") == fmt)


def push_step(w: dict) -> dict:
    return steps_using(w["jobs"]["build"], "docker/build-push-action")[0]


def login_step(w: dict) -> dict:
    return steps_using(w["jobs"]["build"], "azure/login")[0]


BREAKAGES: list[tuple[str, Callable[[dict], Any], Callable[[dict, dict], list[str]], str]] = [
    ("a matrix written by hand", lambda w: w["jobs"]["build"]["strategy"].update(matrix={"service": ["user-service"]}),
     lambda w, p: matrix_problems(w), "build's matrix is"),
    ("the release without needs", lambda w: w["jobs"]["release"].pop("needs"), lambda w, p: ordering_problems(w), "release needs []"),
    ("the release needing only services", lambda w: w["jobs"]["release"].update(needs="services"),
     lambda w, p: ordering_problems(w), "release needs ['services']"),
    ("the release after a failed build", lambda w: w["jobs"]["release"].update({"if": "${{ always() }}"}),
     lambda w, p: ordering_problems(w), "release runs `if:"),
    ("a scan that may fail", lambda w: scan_step(w, "json").update({"continue-on-error": True}),
     lambda w, p: ordering_problems(w), "step Scan the image (JSON"),
    ("no scan", lambda w: w["jobs"]["build"].update(steps=[s for s in w["jobs"]["build"]["steps"]
                                                           if not uses(s, "aquasecurity/trivy-action")]),
     lambda w, p: ordering_problems(w), "the build job has no scan step"),
    ("exit code 0", lambda w: scan_step(w, "json")["with"].update({"exit-code": "0"}),
     lambda w, p: scan_problems(w, p), "the gating scan's exit-code is '0'"),
    ("no exit code", lambda w: scan_step(w, "json")["with"].pop("exit-code"), lambda w, p: scan_problems(w, p), "the gating scan's exit-code is None"),
    ("CRITICAL only", lambda w: scan_step(w, "json")["with"].update(severity="CRITICAL"),
     lambda w, p: scan_problems(w, p), "the gating scan fails on 'CRITICAL'"),
    ("a report elsewhere", lambda w: scan_step(w, "json")["with"].update(output="trivy.json"),
     lambda w, p: scan_problems(w, p), "the JSON report goes to trivy.json"),
    ("a scan by tag", lambda w: scan_step(w, "table")["with"].update({"image-ref": "acrtrpgenprod.azurecr.io/x:v1"}),
     lambda w, p: scan_problems(w, p), "Scan the image (table, for the log): scans acrtrpgenprod.azurecr.io/x:v1"),
    ("a trivy-action by tag", lambda w: scan_step(w, "table").update(uses="aquasecurity/trivy-action@0.34.2"),
     lambda w, p: scan_problems(w, p), "Scan the image (table, for the log): aquasecurity/trivy-action@0.34.2 is not pinned"),
    ("no environment", lambda w: w["jobs"]["build"].pop("environment"), lambda w, p: oidc_problems(w), "build's environment is None"),
    ("no id-token", lambda w: w["jobs"]["build"]["permissions"].pop("id-token"), lambda w, p: oidc_problems(w), "build's permissions"),
    ("a client secret", lambda w: login_step(w)["with"].update({"client-secret": "${{ secrets.AZURE_CLIENT_SECRET }}"}),
     lambda w, p: oidc_problems(w), "azure/login with"),
    ("creds", lambda w: login_step(w).update({"with": {"creds": "${{ secrets.AZURE_CREDENTIALS }}"}}),
     lambda w, p: secret_problems(w), "build: azure/login takes a stored secret"),
    ("another registry", lambda w: push_step(w)["with"].update(tags="ghcr.io/tripgen/${{ matrix.service }}:${{ github.ref_name }}"),
     lambda w, p: image_problems(w, p), "pushes ghcr.io/"),
    ("no push", lambda w: push_step(w)["with"].update(push=False), lambda w, p: image_problems(w, p), "push False"),
    ("no sbom", lambda w: push_step(w)["with"].pop("sbom"), lambda w, p: image_problems(w, p), "push True, provenance mode=max, sbom None"),
    ("the digest unrecorded", lambda w: w["jobs"]["build"].update(steps=[s for s in w["jobs"]["build"]["steps"]
                                                                          if not uses(s, "actions/upload-artifact")]),
     lambda w, p: image_problems(w, p), "the pushed digest is not recorded"),
    ("another policy registry", lambda w: None, lambda w, p: image_problems(w, {**p, "registry": "acrother.azurecr.io"}),
     "the policy's registry is acrother.azurecr.io"),
    ("a literal key", lambda w: w["jobs"]["release"]["steps"][-1]["env"].update(PREFECT_API_KEY="pnu_0123456789"),
     lambda w, p: secret_problems(w), "release: Start and follow the release env PREFECT_API_KEY is written literally"),
    ("a secret spliced into a secret", lambda w: w["jobs"]["release"]["steps"][-1]["env"].update(
        PREFECT_API_AUTH_STRING="admin:${{ secrets.PREFECT_PASSWORD }}"),
     lambda w, p: secret_problems(w), "release: Start and follow the release env PREFECT_API_AUTH_STRING"),
    ("an expression in a script", lambda w: w["jobs"]["build"]["steps"][1].update(run="echo ${{ github.ref_name }}"),
     lambda w, p: secret_problems(w), "build: Check the service's sources interpolates"),
]


@pytest.mark.parametrize(("breakage", "rule", "problem"), [b[1:] for b in BREAKAGES], ids=[b[0] for b in BREAKAGES])
def test_the_rules_reject_a_broken_copy(workflow, policy, breakage, rule, problem):
    broken = copy.deepcopy(workflow)
    breakage(broken)
    problems = rule(broken, policy)
    assert any(p.startswith(problem) for p in problems), problems
