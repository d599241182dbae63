"""Azurite's blob service for the tests that need Azure Blob Storage: `start_azurite` as a module fixture's body."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from delivery.localdb import free_port
from tests.waiting import wait_until

# Azurite's well-known development account (public, in Microsoft's docs): not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


def answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def start_azurite(location: Path) -> Iterator[str]:
    """Azurite's blob service on a free port, its data under `location`; the connection string to it."""
    binary = shutil.which("azurite-blob")
    if binary is None:
        pytest.fail("azurite-blob is not installed: npm install -g azurite@3 (.ci/run does)")
    port = free_port()
    process = subprocess.Popen([binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                                str(location), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: answers(port) or process.poll() is not None, 30, "azurite-blob to listen")
        assert process.poll() is None, f"azurite-blob exited: {process.stderr.read().decode()}"
        yield connection_string(port)
    finally:
        process.terminate()
        process.wait(timeout=10)
