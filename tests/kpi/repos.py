"""Git repositories whose tags were committed at chosen times, for the lead time for changes."""

import os
import subprocess
from datetime import datetime, timedelta


def at(day: datetime, clock: str) -> datetime:
    hours, minutes, seconds = map(int, clock.split(":"))
    return day + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def git(repo, *args, **env) -> None:
    settings = ("-c", "user.name=dev", "-c", "user.email=dev@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false")
    subprocess.run(["git", "-C", str(repo), *settings, *args], check=True, capture_output=True, env={"PATH": os.environ["PATH"], **env})


def tagged_repo(path, day: datetime):
    """A git repository whose v1.2.0 was committed at 08:00 on `day` (two hours before its release started)."""
    path.mkdir()
    git(path, "init", "-q")
    (path / "README").write_text("trip-service\n")
    git(path, "add", "README")
    date = at(day, "08:00:00").isoformat()
    git(path, "commit", "-q", "-m", "v1.2.0", GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    git(path, "tag", "-a", "v1.2.0", "-m", "v1.2.0")
    return path
