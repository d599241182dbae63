"""ArgoCD's repo server for the sandbox: a git revision (branch, tag, HEAD or SHA) resolved with
`git ls-remote`, fetched into a bare mirror, and rendered with `kubectl kustomize`."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import yaml

GIT_TIMEOUT_SECONDS = 60
RENDERS_KEPT = 64
MANIFEST_ERROR = "failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = "
_SHA = re.compile(r"^[0-9a-f]{40}$")


class SourceError(Exception):
    """The source could not be resolved or rendered; the message is the ComparisonError ArgoCD shows."""


def _run(command: list[str]) -> bytes:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(command, capture_output=True, timeout=GIT_TIMEOUT_SECONDS, env=env)
    except subprocess.TimeoutExpired as error:
        raise SourceError(f"`{' '.join(command[:3])}` timed out after {GIT_TIMEOUT_SECONDS} s") from error
    if done.returncode != 0:
        raise SourceError(done.stderr.decode(errors="replace").strip() or f"`{' '.join(command)}` failed")
    return done.stdout


class RepoCache:
    """Bare mirrors of the Applications' git repositories under `directory`, and renders by commit.

    Blocking (git and kubectl subprocesses): call it from a worker thread, one call at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._renders: dict[tuple[str, str, str], tuple[object, ...]] = {}

    def resolve(self, repo_url: str, revision: str) -> str:
        """The commit SHA a branch, tag, `HEAD` or SHA names in the repository (`git ls-remote`)."""
        wanted = revision or "HEAD"
        if _SHA.match(wanted.lower()):
            return wanted.lower()
        try:
            listed = _run(["git", "ls-remote", repo_url]).decode()
        except SourceError as error:
            raise SourceError(f"failed to list refs: {error}") from error
        refs = {}
        for line in listed.splitlines():
            sha, _, ref = line.partition("\t")
            refs[ref] = sha
        for ref in (wanted, f"refs/heads/{wanted}", f"refs/tags/{wanted}^{{}}", f"refs/tags/{wanted}"):
            if ref in refs:
                return refs[ref]
        raise SourceError(f"unable to resolve '{wanted}' to a commit SHA")

    def render(self, repo_url: str, sha: str, path: str) -> tuple[object, ...]:
        """The objects `kubectl kustomize` renders at `path` of commit `sha` (cached per commit and path)."""
        key = (repo_url, sha, path)
        if key not in self._renders:
            archive = _run(["git", "--git-dir", str(self._mirror(repo_url, sha)), "archive", "--format=tar", sha])
            with tempfile.TemporaryDirectory(dir=self.directory) as checkout:
                root = Path(checkout).resolve()
                with tarfile.open(fileobj=io.BytesIO(archive)) as tree:
                    tree.extractall(root, filter="data")
                app_dir = (root / path.strip("/")).resolve()
                if not app_dir.is_dir() or not app_dir.is_relative_to(root):
                    raise SourceError(f"{MANIFEST_ERROR}{path}: app path does not exist")
                try:
                    rendered = _run(["kubectl", "kustomize", str(app_dir)])
                except SourceError as error:
                    raise SourceError(f"{MANIFEST_ERROR}`kustomize build {path}` failed: {error}") from error
            try:
                documents = tuple(d for d in yaml.safe_load_all(rendered) if d is not None)
            except yaml.YAMLError as error:
                raise SourceError(f"{MANIFEST_ERROR}the rendered manifests are not YAML: {error}") from error
            if len(self._renders) >= RENDERS_KEPT:
                self._renders.pop(next(iter(self._renders)))
            self._renders[key] = documents
        return self._renders[key]

    def _mirror(self, repo_url: str, sha: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        mirror = self.directory / hashlib.sha256(repo_url.encode()).hexdigest()[:16]
        if not mirror.exists():
            _run(["git", "init", "--bare", "--quiet", str(mirror)])
        git = ["git", "--git-dir", str(mirror)]
        if not self._has(mirror, sha):
            _run([*git, "fetch", "--quiet", "--force", "--tags", repo_url, "+refs/heads/*:refs/heads/*"])
        if not self._has(mirror, sha):
            _run([*git, "fetch", "--quiet", repo_url, sha])
        return mirror

    @staticmethod
    def _has(mirror: Path, sha: str) -> bool:
        check = ["git", "--git-dir", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"]
        return subprocess.run(check, capture_output=True, timeout=GIT_TIMEOUT_SECONDS).returncode == 0
