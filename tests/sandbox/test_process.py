"""A sandbox started by `sandbox_process` ends with the process that started it, even when that one is killed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

PARENT = """
import os, sys
from pathlib import Path
from delivery.sandbox.process import sandbox_process
with sandbox_process(Path(sys.argv[1])) as endpoints:
    print(endpoints.kubernetes, flush=True)
    os.kill(os.getpid(), 9)  # no teardown runs, as when a test run is killed
"""


def sandboxes_in(work: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"state-dir {work}/sandbox"], capture_output=True, text=True)
    return found.stdout.split()


def test_a_killed_parent_takes_its_sandbox_with_it(tmp_path: Path) -> None:
    parent = subprocess.run([sys.executable, "-c", PARENT, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert parent.returncode == -9 and parent.stdout.startswith("http://127.0.0.1:"), parent.stderr
    deadline = time.monotonic() + 15
    while sandboxes_in(tmp_path):
        assert time.monotonic() < deadline, f"sandbox {sandboxes_in(tmp_path)} outlived its parent"
        time.sleep(0.2)
