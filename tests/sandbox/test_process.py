"""A sandbox started by `sandbox_process` ends with the process that started it, even when that one is killed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from delivery.sandbox.process import stop
from tests.conftest import REPO
from tests.waiting import wait_until

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


DEAF = """
import faulthandler, signal, time
faulthandler.register(signal.SIGUSR1, all_threads=True)  # as run_sandbox does
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("serving", flush=True)
while True:
    signal.pause()
"""


def test_a_sandbox_that_does_not_stop_is_killed_and_fails_with_its_stacks(tmp_path: Path) -> None:
    log_path = tmp_path / "sandbox.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-u", "-c", DEAF], stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: "serving" in log_path.read_text(), 30, "the deaf process to start",
               invariant=lambda: process.poll() is None)
    with pytest.raises(AssertionError, match=r"did not stop within 1s of SIGTERM; its threads:[\s\S]*most recent call first"):
        stop(process, log_path, timeout=1)
    assert process.returncode == -9
