"""The gitops writer's parts on real git (a local bare remote) and real kustomize: commits, pushes, the overlay."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from delivery.gitops.overlay import ReleaseOverlay, merged
from delivery.gitops.repository import GitError, ManifestsRepository, new_bare_repository

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-blue", "labels": {"app": "web"}},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "acr.io/web:v1"}]}}}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web", "version": "blue"}, "ports": [{"port": 80}]}}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def remote(tmp_path) -> Path:
    """A bare repository holding an overlay with one Deployment and one Service."""
    tree = tmp_path / "tree" / "environments" / "production"
    tree.mkdir(parents=True)
    (tree / "web.yaml").write_text(yaml.safe_dump_all([DEPLOYMENT, SERVICE]))
    (tree / "kustomization.yaml").write_text(yaml.safe_dump({"namespace": "production", "resources": ["web.yaml"]}))
    new_bare_repository(tmp_path / "manifests.git", tmp_path / "tree", "the overlay")
    return tmp_path / "manifests.git"


def rendered(repo: ManifestsRepository) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in ReleaseOverlay(repo.workdir, "environments/production").rendered()}


def test_a_change_is_a_pushed_commit_whose_render_has_it_and_a_second_writer_is_rebased_onto(remote, tmp_path):
    repo = ManifestsRepository(str(remote), "main", tmp_path / "clone")
    base = repo.sync()
    overlay = ReleaseOverlay(repo.workdir, "environments/production")
    overlay.change({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "production"},
                    "spec": {"selector": {"version": "green"}}})
    commit = repo.commit("v1.2.0: switch web to green", overlay.files())
    assert commit and git(remote, "rev-parse", "main").strip() == commit.sha
    assert rendered(repo)[("Service", "web")]["spec"]["selector"] == {"app": "web", "version": "green"}
    assert repo.commit("nothing", overlay.files()) is None  # no change, no commit

    other = ManifestsRepository(str(remote), "main", tmp_path / "other")
    other.sync()
    repo_overlay = ReleaseOverlay(other.workdir, "environments/production")
    repo_overlay.change({**DEPLOYMENT, "spec": {"replicas": 0}})  # meanwhile the first writer commits again
    overlay.change({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"version": None}}})
    first = repo.commit("v1.2.0: web selects every version", overlay.files())
    second = other.commit("v1.2.0: scale web-blue to 0", repo_overlay.files())  # rejected, rebased, pushed
    assert second and git(remote, "rev-parse", "main").strip() == second.sha
    assert other.is_at_or_after(second.sha, first.sha) and not other.is_at_or_after(base, first.sha)
    assert [c.message.splitlines()[0] for c in other.commits_since(base, overlay.files())][-1] == "v1.2.0: scale web-blue to 0"
    repo.sync()
    objects = rendered(repo)
    assert objects[("Service", "web")]["spec"]["selector"] == {"app": "web"}  # the null removed `version`
    assert objects[("Deployment", "web-blue")]["spec"]["replicas"] == 0


def test_an_object_the_overlay_does_not_render_is_added_as_a_resource(remote, tmp_path):
    repo = ManifestsRepository(str(remote), "main", tmp_path / "clone")
    repo.sync()
    overlay = ReleaseOverlay(repo.workdir, "environments/production")
    canary = {**DEPLOYMENT, "metadata": {"name": "web-canary", "namespace": "production"}}
    overlay.change(canary)
    kustomization = yaml.safe_load((repo.workdir / "environments/production/kustomization.yaml").read_text())
    assert "release/deployment-web-canary.yaml" in kustomization["resources"]
    assert rendered(repo)[("Deployment", "web-canary")]["metadata"]["namespace"] == "production"


def test_merging_replaces_lists_and_keeps_nulls():
    assert merged({"a": {"b": 1, "c": [1, 2]}}, {"a": {"c": [3], "d": None}}) == {"a": {"b": 1, "c": [3], "d": None}}


def test_git_errors_name_the_command_and_never_the_token(tmp_path):
    repo = ManifestsRepository(str(tmp_path / "missing.git"), "main", tmp_path / "clone", token="s3cr3t-token")
    with pytest.raises(GitError, match="git clone failed") as failed:
        repo.sync()
    assert "s3cr3t" not in str(failed.value)
