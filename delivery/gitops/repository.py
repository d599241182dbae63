"""The manifests repository a gitops release commits to: a working clone, commits, pushes, reverts (real git)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tenacity import retry_if_exception_type

from delivery.retry import retrying

PUSH_ATTEMPTS = 4  # a push another writer beat: fetch, rebase onto it, push again


class GitError(RuntimeError):
    """A git command failed; the message has git's own words (never a credential)."""


class PushRejected(GitError):
    """The remote moved on since our fetch."""


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str


class ManifestsRepository:
    """A clone of `url` at `branch` in `workdir`; credentials come from the environment only (`token`)."""

    def __init__(self, url: str, branch: str, workdir: Path, token: str | None = None,
                 author: tuple[str, str] = ("tripgen-release", "release@tripgen.com")) -> None:
        self.url, self.branch, self.workdir = url, branch, workdir
        self._env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
                     "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1], **_auth_header(token)}

    def sync(self) -> str:
        """Clone on first use, else fetch; the working copy is then exactly the remote branch. Returns its SHA."""
        if not (self.workdir / ".git").exists():
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--quiet", "--branch", self.branch, self.url, str(self.workdir), cwd=self.workdir.parent)
        else:
            self._git("fetch", "--quiet", "origin", self.branch)
            self._git("reset", "--quiet", "--hard", f"origin/{self.branch}")
        return self.head()

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def path(self, relative: str) -> Path:
        return self.workdir / relative

    def commit(self, message: str, paths: list[str]) -> Commit | None:
        """Commit the changes under `paths` and push them; None when they changed nothing."""
        self._git("add", "--all", "--", *paths)
        if not self._git("status", "--porcelain", "--", *paths).strip():
            return None
        self._git("commit", "--quiet", "-m", message)
        self._push_with_rebase()
        return Commit(self.head(), message)

    def is_at_or_after(self, reported: str, sha: str) -> bool:
        """Whether commit `reported` is `sha` or comes after it (ArgoCD may report a later push that holds ours)."""
        if reported == sha:
            return True
        if subprocess.run(["git", "cat-file", "-e", f"{reported}^{{commit}}"], cwd=self.workdir, env=self._env,
                          capture_output=True).returncode != 0:
            self._git("fetch", "--quiet", "origin", self.branch)
        ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", sha, reported], cwd=self.workdir, env=self._env,
                                  capture_output=True)
        return ancestor.returncode == 0

    def content_at(self, sha: str, relative: str) -> str | None:
        """The file at commit `sha`, or None when it did not exist there."""
        try:
            return self._git("show", f"{sha}:{relative}")
        except GitError:
            return None

    def commits_since(self, sha: str, paths: list[str]) -> list[Commit]:
        """Commits after `sha` that touched `paths`, oldest first."""
        out = self._git("log", "--reverse", "--format=%H%x00%B%x1e", f"{sha}..HEAD", "--", *paths)
        return [Commit(*entry.strip("\n").split("\x00", 1)) for entry in out.split("\x1e") if entry.strip()]

    def _push_with_rebase(self) -> None:
        def push() -> None:
            try:
                self._git("push", "--quiet", "origin", f"HEAD:{self.branch}")
            except GitError as error:
                if "rejected" in str(error) or "fetch first" in str(error) or "non-fast-forward" in str(error):
                    self._git("pull", "--quiet", "--rebase", "origin", self.branch)
                    raise PushRejected(str(error)) from error
                raise

        retrying(attempts=PUSH_ATTEMPTS, retry=retry_if_exception_type(PushRejected), backoff=0.2, max_backoff=2)(push)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=cwd or self.workdir, env=self._env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
        return done.stdout


def _auth_header(token: str | None) -> dict[str, str]:
    """The token as an HTTP header set through git's environment config: never on a command line, never in a URL."""
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


def new_bare_repository(bare: Path, tree: Path, message: str, author: tuple[str, str] = ("platform", "platform@tripgen.com")) -> str:
    """Create the bare repository `bare` whose `main` holds a copy of `tree` in one commit; returns its SHA."""
    seed = bare.with_name(bare.name + "-seed")
    shutil.rmtree(bare, ignore_errors=True)
    shutil.rmtree(seed, ignore_errors=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1], "GIT_COMMITTER_NAME": author[0],
           "GIT_COMMITTER_EMAIL": author[1]}

    def git(cwd: Path, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout

    bare.parent.mkdir(parents=True, exist_ok=True)
    git(bare.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(bare.parent, "clone", "--quiet", str(bare), str(seed))
    shutil.copytree(tree, seed, dirs_exist_ok=True)
    git(seed, "add", ".")
    git(seed, "commit", "--quiet", "-m", message)
    git(seed, "push", "--quiet", "origin", "main")
    shutil.rmtree(seed)
    return git(bare, "rev-parse", "main").strip()
