"""The audit log's immutable copy (R-AUDIT): an Azure append blob of the same bytes and its chain head, in a
container whose retention policy (`compliance.audit_retention`) is set through ARM: the data plane has none."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobServiceClient

from delivery.policy.models import Policy
from delivery.settings import Settings

DATA_BLOB = "audit.jsonl"
HEAD_BLOB = "head.jsonl"  # one {"seq", "sha256"} line per sync: an append blob, as retention forbids overwrites
MAX_BLOCK = 4 * 1024 * 1024  # Append Block's limit
ARM = "https://management.azure.com"
ARM_API_VERSION = "2023-05-01"


class AuditMirrorError(RuntimeError):
    """The blob copy could not be written or read; the message names the blob, never a credential."""


@dataclass(frozen=True)
class ChainHead:
    """The last record's sequence number and SHA-256."""

    seq: int
    sha256: str


@dataclass(frozen=True)
class ContainerRetention:
    """A time-based retention policy allowing protected appends, set through ARM on the container."""

    account_id: str  # /subscriptions/…/resourceGroups/…/providers/Microsoft.Storage/storageAccounts/…
    days: int
    credential: TokenCredential
    arm_url: str = ARM

    def apply(self, container: str) -> None:
        """Keep a locked policy at least `days` long; else create or update an unlocked one and check the answer."""
        url = f"{self.arm_url}{self.account_id}/blobServices/default/containers/{container}/immutabilityPolicies/default"
        auth = {"Authorization": f"Bearer {self.credential.get_token(f'{ARM}/.default').token}"}
        params = {"api-version": ARM_API_VERSION}
        body = {"properties": {"immutabilityPeriodSinceCreationInDays": self.days, "allowProtectedAppendWrites": True}}
        try:
            with httpx.Client(timeout=30) as http:
                current = http.get(url, params=params, headers=auth)
                if current.status_code == 200 and self._holds(current.json().get("properties", {}), locked=True):
                    return
                answer = http.put(url, params=params, headers=auth, json=body)
        except httpx.HTTPError as err:
            raise AuditMirrorError(f"cannot reach Azure Resource Manager for container '{container}': {err}") from None
        if answer.status_code != 200:
            error = answer.json().get("error", {}) if answer.headers.get("content-type", "").startswith("application/json") else {}
            raise AuditMirrorError(f"cannot set the {self.days}-day retention policy of container '{container}': HTTP "
                                   f"{answer.status_code} {error.get('code', '')} {error.get('message', '')}".rstrip())
        if not self._holds(answer.json().get("properties", {}), locked=False):
            raise AuditMirrorError(f"container '{container}': ARM answered a retention policy other than {self.days} days "
                                   f"with protected appends: {answer.json().get('properties')}")

    def _holds(self, properties: dict, *, locked: bool) -> bool:
        return ((not locked or properties.get("state") == "Locked") and properties.get("allowProtectedAppendWrites") is True
                and properties.get("immutabilityPeriodSinceCreationInDays", 0) >= self.days)


@dataclass(frozen=True)
class BlobComparison:
    """The local log against the blob's copy: the first differing line (1-based) if any."""

    local_records: int
    blob_records: int
    head: ChainHead | None
    line: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.line is None and not self.problem


@dataclass
class BlobAuditMirror:
    """Appends the local log's new bytes to `audit.jsonl` (conditional on its size), the chain head to `head.jsonl`;
    the blob stays a prefix of the local file, so the next sync catches up a failed one."""

    service: BlobServiceClient
    container: str = "tripgen-audit"
    retention: ContainerRetention | None = None
    _retention_applied: bool = field(default=False, init=False)

    @property
    def where(self) -> str:
        return f"{self.service.account_name}/{self.container}/{DATA_BLOB}"

    def _blob(self, name: str) -> BlobClient:
        return self.service.get_blob_client(self.container, name)

    def sync(self, log: bytes) -> None:
        """Append what the blob lacks of `log`, then its head; raise AuditMirrorError naming the blob on failure."""
        try:
            if self.retention is not None and not self._retention_applied:
                self._create()
                self.retention.apply(self.container)
                self._retention_applied = True
            size = self._size()
            if size > len(log):
                raise AuditMirrorError(f"{self.where} holds {size} bytes, the local log only {len(log)}: "
                                       "the local log was cut or rewritten (tripgen-release audit verify --against-blob)")
            if size == len(log):
                return
            for start in range(size, len(log), MAX_BLOCK):
                self._blob(DATA_BLOB).append_block(log[start:start + MAX_BLOCK], appendpos_condition=start)
            record = json.loads(log.rstrip(b"\n").rsplit(b"\n", 1)[-1])
            head = json.dumps({"seq": record["seq"], "sha256": record["sha256"]}, sort_keys=True)
            self._blob(HEAD_BLOB).append_block(head.encode() + b"\n")
        except AzureError as err:
            raise AuditMirrorError(f"cannot append the audit log to {self.where}: {_reason(err)}") from None

    def _size(self) -> int:
        try:
            return self._blob(DATA_BLOB).get_blob_properties().size
        except ResourceNotFoundError:
            self._create()
            return 0

    def _create(self) -> None:
        try:
            self.service.create_container(self.container)
        except ResourceExistsError:
            pass
        for name in (DATA_BLOB, HEAD_BLOB):
            try:
                self._blob(name).create_append_blob(match_condition=MatchConditions.IfMissing)
            except ResourceExistsError:
                pass

    def compare(self, local: bytes) -> BlobComparison:
        """Compare `local` line by line with the blob, and the blob's last record with its recorded head."""
        try:
            blob = self._blob(DATA_BLOB).download_blob().readall()
            heads = self._blob(HEAD_BLOB).download_blob().readall().splitlines()
        except AzureError as err:
            raise AuditMirrorError(f"cannot read {self.where}: {_reason(err)}") from None
        mine, theirs = _lines(local), _lines(blob)
        head = ChainHead(**json.loads(heads[-1])) if heads else None
        found = BlobComparison(len(mine), len(theirs), head)
        for number, (ours, copy) in enumerate(zip(mine, theirs), start=1):
            if ours != copy:
                return replace(found, line=number, problem=f"differs from the blob's copy (seq {_seq(copy)}): the local line was changed")
        if len(mine) < len(theirs):
            return replace(found, line=len(mine) + 1, problem=f"missing: the blob holds {len(theirs) - len(mine)} more record(s) from seq {_seq(theirs[len(mine)])}")
        if len(mine) > len(theirs):
            return replace(found, line=len(theirs) + 1, problem=f"not in the blob: {len(mine) - len(theirs)} record(s) not mirrored yet")
        last = json.loads(theirs[-1]) if theirs else None
        if head != (ChainHead(last["seq"], last["sha256"]) if last else None):
            return replace(found, problem=f"the blob's recorded chain head ({head}) is not its last record")
        return found


def _lines(content: bytes) -> list[bytes]:
    return content.removesuffix(b"\n").split(b"\n") if content else []


def _seq(line: bytes) -> object:
    try:
        return json.loads(line).get("seq", "?")
    except ValueError:
        return "?"


def _reason(err: AzureError) -> str:
    """The message's first line (no request dump), any SAS signature in it masked."""
    return re.sub(r"(?i)(sig=)[^&\s'\"]+", r"\1***", (str(err.message).splitlines() or [""])[0])


def mirror_from_settings(settings: Settings, policy: Policy | None = None) -> BlobAuditMirror | None:
    """The mirror `TRIPGEN_AUDIT_BLOB_*` describe (None without a connection string); `policy` adds its retention."""
    if settings.audit_blob_connection_string is None:
        return None
    try:
        service = BlobServiceClient.from_connection_string(settings.audit_blob_connection_string.get_secret_value())
    except ValueError:
        raise AuditMirrorError("TRIPGEN_AUDIT_BLOB_CONNECTION_STRING is not a storage connection string") from None
    retention = None
    if policy is not None and settings.audit_blob_account_id:
        retention = ContainerRetention(settings.audit_blob_account_id, policy.compliance.audit_retention.days,
                                       DefaultAzureCredential())
    return BlobAuditMirror(service, settings.audit_blob_container, retention)


def check_against_blob(path: Path, settings: Settings) -> tuple[bool, str]:
    """`audit verify --against-blob`: whether `path` matches its blob copy and head, and the line saying so."""
    try:
        mirror = mirror_from_settings(settings)
        if mirror is None:
            return False, f"{path}: --against-blob needs TRIPGEN_AUDIT_BLOB_CONNECTION_STRING"
        found = mirror.compare(path.read_bytes())
    except AuditMirrorError as err:
        return False, f"{path}: {err}"
    if not found.intact:
        where = f"{path}:{found.line}" if found.line else str(path)
        return False, f"{where}: {found.problem} (blob {mirror.where})"
    head = f"chain head seq {found.head.seq} sha256 {found.head.sha256}" if found.head else "empty"
    return True, f"{path}: identical to blob {mirror.where} ({found.blob_records} records, {head})"
