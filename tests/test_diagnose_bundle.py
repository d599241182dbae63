"""A diagnosis's markdown and bundle: every section and file in the tar.gz, and bundles older than 30 days pruned."""

import os
import tarfile
from datetime import datetime, timedelta, timezone

from delivery.diagnose import Diagnosis

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=timezone.utc)


def diagnosis() -> Diagnosis:
    found = Diagnosis("production", ("trip-service",), NOW)
    found.add("Pods", "| pod |\n|---|\n| trip-service-blue-a |")
    found.add("Logs", "1 pod", **{"logs/trip-service-blue-a.log": b"started\n", "logs/trip-service-blue-a.previous.log": b"Exception\n"})
    return found


def test_the_bundle_holds_the_report_and_every_file(tmp_path):
    bundle = diagnosis().write_bundle(tmp_path)
    assert bundle.name == "diagnosis-production-trip-service-20261205T030000Z.tar.gz"
    with tarfile.open(bundle) as opened:
        assert opened.getnames() == ["report.md", "logs/trip-service-blue-a.log", "logs/trip-service-blue-a.previous.log"]
        report = opened.extractfile("report.md").read().decode()
    assert report.startswith("# Diagnosis of trip-service in production\n\nTaken at 2026-12-05 03:00:00 UTC.")
    assert "\n## Pods\n" in report and "\n## Logs\n" in report


def test_bundles_older_than_30_days_are_deleted_and_younger_ones_kept(tmp_path):
    old, young = tmp_path / "diagnosis-production-a-1.tar.gz", tmp_path / "diagnosis-production-a-2.tar.gz"
    for path, age in ((old, timedelta(days=30, minutes=1)), (young, timedelta(days=29, hours=23))):
        path.write_bytes(b"x")
        moment = (NOW - age).timestamp()
        os.utime(path, (moment, moment))
    diagnosis().write_bundle(tmp_path)
    assert not old.exists() and young.exists()
