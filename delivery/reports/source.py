"""Where the CI reports are: a local directory, or an Azure Blob container the release workflow uploaded them to.

Both answer the same relative paths (`reports/v1.2.0/coverage.xml`); a missing one raises FileNotFoundError.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import ContainerClient
from pydantic import SecretStr


class ReportSourceError(RuntimeError):
    """The source could not be read (not a missing report); the message names the place, never a credential."""


class ReportSource(Protocol):
    """Reports by path relative to the root: a directory or a blob container."""

    def location(self, relative: str) -> str:
        """Where `relative` is, for messages: a path, or the blob's URL without any SAS."""

    def read_bytes(self, relative: str) -> bytes:
        """The file's bytes; FileNotFoundError when there is none, ReportSourceError when unreadable."""

    def exists(self, relative: str) -> bool:
        """Whether a file is at `relative`."""

    def list(self, prefix: str) -> list[str]:
        """The relative paths of the files under the folder `prefix`, sorted."""

    def local_path(self, relative: str) -> Path:
        """A local path of the file or folder `relative` (downloaded first from a container); may not exist."""


class DirectorySource:
    """Reports in a local directory (TRIPGEN_REPORTS a path)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def location(self, relative: str) -> str:
        return str(self.root / relative)

    def read_bytes(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return (self.root / relative).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        return sorted(str(p.relative_to(self.root)) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    def local_path(self, relative: str) -> Path:
        return self.root / relative


class BlobSource:
    """Reports in an Azure Blob container (TRIPGEN_REPORTS its URL), blob names being the relative paths."""

    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self.url = urlunsplit(urlsplit(container.url)._replace(query="", fragment="")).rstrip("/")
        self._copies = Path(tempfile.mkdtemp(prefix="tripgen-reports-"))
        weakref.finalize(self, shutil.rmtree, self._copies, True)

    def location(self, relative: str) -> str:
        return f"{self.url}/{relative}"

    def read_bytes(self, relative: str) -> bytes:
        try:
            return self.container.download_blob(relative).readall()
        except ResourceNotFoundError as err:
            if _code(err) == "ContainerNotFound":
                raise ReportSourceError(f"the container {self.url} does not exist: create it and upload the reports") from None
            raise FileNotFoundError(self.location(relative)) from None
        except AzureError as err:
            raise ReportSourceError(f"cannot read {self.location(relative)}: {_reason(err)}") from None

    def exists(self, relative: str) -> bool:
        try:
            return self.container.get_blob_client(relative).exists()
        except AzureError as err:
            raise ReportSourceError(f"cannot read {self.location(relative)}: {_reason(err)}") from None

    def list(self, prefix: str) -> list[str]:
        folder = prefix.rstrip("/") + "/"
        try:
            return sorted(blob.name for blob in self.container.list_blobs(name_starts_with=folder))
        except AzureError as err:
            raise ReportSourceError(f"cannot list {self.location(folder)}: {_reason(err)}") from None

    def local_path(self, relative: str) -> Path:
        """A fresh copy of the blob `relative`, or of every blob under the folder `relative`."""
        target = self._copies / relative
        shutil.rmtree(target, ignore_errors=True)
        target.unlink(missing_ok=True)
        names = self.list(relative) or ([relative] if self.exists(relative) else [])
        for name in names:
            path = self._copies / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.read_bytes(name))
        return target


def is_container_url(reports: str | Path) -> bool:
    """Whether TRIPGEN_REPORTS names a blob container (an http(s) URL) rather than a directory."""
    return isinstance(reports, str) and reports.startswith(("http://", "https://"))


def report_source(reports: str | Path | ReportSource, secret: SecretStr | None = None) -> ReportSource:
    """The source TRIPGEN_REPORTS names; `secret` (a connection string or a SAS token) authenticates a container,
    else a SAS in the URL, else DefaultAzureCredential."""
    if not isinstance(reports, (str, Path)):
        return reports
    if not is_container_url(reports):
        return DirectorySource(reports)
    return BlobSource(ContainerClient.from_container_url(str(reports), credential=_credential(str(reports), secret)))


def _credential(url: str, secret: SecretStr | None) -> object:
    if secret is not None:
        value = secret.get_secret_value().strip()
        fields = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
        if "AccountKey" in fields and "AccountName" in fields:
            return {"account_name": fields["AccountName"], "account_key": fields["AccountKey"]}
        if "SharedAccessSignature" in fields:
            return fields["SharedAccessSignature"]
        if "sig=" in value:
            return value.lstrip("?")
        raise ValueError("TRIPGEN_REPORTS_BLOB_CONNECTION_STRING is neither a connection string with AccountName and "
                         "AccountKey or SharedAccessSignature, nor a SAS token: copy it from the storage account")
    if urlsplit(url).query:
        return None  # the SAS in the URL
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _code(err: AzureError) -> str:
    return str(getattr(err, "error_code", "") or "")


def _reason(err: AzureError) -> str:
    """The HTTP status and Azure's error code, or the error's type: never a URL, which may carry a SAS."""
    if isinstance(err, HttpResponseError) and err.status_code:
        return f"HTTP {err.status_code} {_code(err)}".rstrip() + ": check TRIPGEN_REPORTS_BLOB_CONNECTION_STRING or the identity's role"
    return f"{type(err).__name__}: check that the storage account is reachable"
