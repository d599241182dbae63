"""Start `tripgen-release sandbox serve` in its own process (tests, benchmarks), as an operator would."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from delivery.sandbox.endpoints import Endpoints

START_TIMEOUT = 30
STOP_TIMEOUT = 15
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None  # looked up before any fork


def end_with_parent() -> None:
    """In a child before exec: get SIGTERM when the parent dies (a killed test run leaves no sandbox behind)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def sandbox_process(work_dir: Path, policy_file: Path | None = None, *extra: str) -> Iterator[Endpoints]:
    """A running sandbox whose files live in `work_dir/sandbox`; stopped with SIGTERM afterwards."""
    state = work_dir / "sandbox"
    log_path = work_dir / "sandbox.log"
    command = [sys.executable, "-m", "delivery.sandbox_cli", "serve", "--state-dir", str(state), "--seed", "7", *extra]
    if policy_file:
        command += ["--policy", str(policy_file)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=end_with_parent)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not (state / "endpoints.json").exists():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"the sandbox did not start:\n{log_path.read_text()}"
                time.sleep(0.1)
            yield Endpoints.read(state)
        finally:
            stop(process, log_path)
    assert not (state / "endpoints.json").exists(), "a stopped sandbox must remove its endpoints file"


def stop(process: subprocess.Popen, log_path: Path, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then wait; a sandbox still running after `timeout` has its stacks printed to its log (SIGUSR1),
    is killed, and fails with them."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        process.kill()
        process.wait()
        raise AssertionError(f"the sandbox did not stop within {timeout:g}s of SIGTERM; its threads:\n"
                             + log_path.read_text(errors="replace")[-6000:]) from None
