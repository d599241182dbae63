"""AKS: the kubeconfig comes from Azure Resource Manager (its transport faked with the documented
payloads), Azure AD clusters get bearer tokens from the credential, and kubelogin never runs."""

from __future__ import annotations

import base64
import datetime as dt
import io
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3
import yaml
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import CredentialUnavailableError, EnvironmentCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import BaseAdapter, HTTPAdapter

from delivery.kube.aks import AksError, connect_aks
from delivery.policy.models import AzureCluster
from delivery.release.runtime import Runtime
from delivery.settings import Settings
from tests.conftest import REPO
from tests.sandbox.cluster_fixture import running_cluster

SUBSCRIPTION = "3f2c1b0a-9d8e-4f7a-8b6c-5d4e3f2a1b0c"
CLUSTER = AzureCluster(subscription_id=SUBSCRIPTION)
ARM_SCOPE = "https://management.azure.com/.default"
SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"  # the AKS AAD server application
CREDENTIALS_PATH = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-tripgen-prod/providers/"
                    "Microsoft.ContainerService/managedClusters/aks-tripgen-prod/listClusterUserCredential")
AZURE_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
             "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE")


class FakeArm(BaseAdapter):
    """Azure Resource Manager behind the SDK's requests transport: records requests, answers one canned response."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__()
        self.status, self.body = status, body
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.requests.append(request)
        raw = urllib3.HTTPResponse(body=io.BytesIO(json.dumps(self.body).encode()), status=self.status,
                                   headers={"Content-Type": "application/json"}, preload_content=False)
        return HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        pass

    def transport(self) -> RequestsTransport:
        session = requests.Session()
        session.mount("https://", self)
        return RequestsTransport(session=session)


class FakeCredential:
    """A TokenCredential: ARM tokens, and the queued (token, seconds to expiry) for other scopes while they last."""

    def __init__(self, *tokens: tuple[str, float]) -> None:
        self.tokens = list(tokens)
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        if scopes == (ARM_SCOPE,):
            return AccessToken("arm-token", int(time.time()) + 3600)
        if not self.tokens:
            raise CredentialUnavailableError("no token for this scope")
        token, lifetime = self.tokens.pop(0)
        return AccessToken(token, int(time.time() + lifetime))


def credential_results(kubeconfig: dict) -> dict:
    """The documented body of listClusterUserCredential."""
    value = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
    return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}


def aks_kubeconfig(server: str, user: dict) -> dict:
    """A kubeconfig shaped like the one AKS hands out, for the API server at `server`."""
    name = "aks-tripgen-prod"
    user_name = f"clusterUser_rg-tripgen-prod_{name}"
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": server}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": user_name}}],
            "users": [{"name": user_name, "user": user}]}


def self_signed(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate (its own CA, valid for 127.0.0.1) and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubelogin_user(tripwire: Path) -> dict:
    """The AAD user AKS writes (exec format), whose command would leave `tripwire.ran` behind if it ran."""
    tripwire.write_text(f"#!/bin/sh\ntouch {tripwire}.ran\n")
    tripwire.chmod(0o755)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(tripwire),
                     "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", SERVER_ID,
                              "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a",
                              "--tenant-id", "72f988bf-86f1-41af-91ab-2d7cd011db47", "--login", "devicecode"],
                     "env": None, "provideClusterInfo": False,
                     "installHint": "kubelogin is not installed which is required to connect to AAD enabled cluster."}}


def azure_provider_user(_: Path) -> dict:
    """The legacy AAD user (`auth-provider: azure`)."""
    return {"auth-provider": {"name": "azure", "config": {
        "apiserver-id": SERVER_ID, "client-id": "80faf920-1908-4b52-b5ef-a8e7bedfc67a",
        "tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "environment": "AzurePublicCloud", "config-mode": "1"}}}


class RecordingApiServer(BaseHTTPRequestHandler):
    """Answers every GET with a one-namespace list; records the Authorization header and the client certificate."""

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization"))
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        self.server.clients.append(dict(part[0] for part in peer["subject"])["commonName"] if peer else None)
        body = json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {},
                           "items": [{"metadata": {"name": "production"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def recording_apiserver(tls: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    """A RecordingApiServer on a free loopback port (HTTPS with `tls`); its address is `.url`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingApiServer)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.authorizations, server.clients = [], []
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def apiserver() -> Iterator[ThreadingHTTPServer]:
    with recording_apiserver() as server:
        yield server


def test_the_kubeconfig_from_arm_reaches_the_cluster(tmp_path):
    with running_cluster(tmp_path) as cluster:
        arm, credential = FakeArm(200, credential_results(aks_kubeconfig(cluster.base_url, {}))), FakeCredential()
        conn = connect_aks(CLUSTER, credential, transport=arm.transport())
        conn.call(conn.core.create_namespace, {"metadata": {"name": "production"}})
        assert "production" in [ns.metadata.name for ns in conn.call(conn.core.list_namespace).items]
    [request] = arm.requests
    assert request.method == "POST" and urlsplit(request.url).netloc == "management.azure.com"
    assert urlsplit(request.url).path == CREDENTIALS_PATH
    assert parse_qs(urlsplit(request.url).query)["api-version"][0].startswith("20")
    assert request.headers["Authorization"] == "Bearer arm-token" and credential.scopes == [ARM_SCOPE]


def test_a_client_certificate_user_talks_tls_with_the_cluster_ca(tmp_path):
    (server_cert, server_key), (client_cert, client_key) = self_signed("apiserver"), self_signed("clusterUser")
    (tmp_path / "server.pem").write_bytes(server_cert + server_key)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "server.pem")
    tls.load_verify_locations(cadata=client_cert.decode())
    tls.verify_mode = ssl.CERT_REQUIRED
    with recording_apiserver(tls) as server:
        kubeconfig = aks_kubeconfig(server.url, {"client-certificate-data": b64(client_cert),
                                                 "client-key-data": b64(client_key)})
        kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = b64(server_cert)
        conn = connect_aks(CLUSTER, FakeCredential(), transport=FakeArm(200, credential_results(kubeconfig)).transport())
        assert [ns.metadata.name for ns in conn.call(conn.core.list_namespace).items] == ["production"]
    assert server.clients == ["clusterUser"] and server.authorizations == [None]


@pytest.mark.parametrize("user", [kubelogin_user, azure_provider_user])
def test_an_azure_ad_cluster_gets_a_bearer_for_the_server_app_without_kubelogin(user, apiserver, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    tripwire = tmp_path / "kubelogin"
    arm = FakeArm(200, credential_results(aks_kubeconfig(apiserver.url, user(tripwire))))
    credential = FakeCredential(("aad-token-1", 3600))
    conn = connect_aks(CLUSTER, credential, transport=arm.transport())
    assert [ns.metadata.name for ns in conn.call(conn.core.list_namespace).items] == ["production"]
    assert apiserver.authorizations == ["Bearer aad-token-1"]
    assert credential.scopes == [ARM_SCOPE, f"{SERVER_ID}/.default"]
    assert not Path(f"{tripwire}.ran").exists()
    assert "aad-token-1" not in caplog.text and "arm-token" not in caplog.text
    assert arm.body["kubeconfigs"][0]["value"] not in caplog.text


def test_the_token_is_replaced_before_it_expires(apiserver, tmp_path):
    arm = FakeArm(200, credential_results(aks_kubeconfig(apiserver.url, kubelogin_user(tmp_path / "kubelogin"))))
    credential = FakeCredential(("about-to-expire", 10), ("fresh", 3600))
    conn = connect_aks(CLUSTER, credential, transport=arm.transport())
    conn.call(conn.core.list_namespace)
    conn.call(conn.core.list_namespace)
    assert apiserver.authorizations == ["Bearer fresh", "Bearer fresh"]
    assert credential.scopes.count(f"{SERVER_ID}/.default") == 2 and not credential.tokens


def test_no_token_for_the_server_app_says_how_to_sign_in(apiserver, tmp_path):
    arm = FakeArm(200, credential_results(aks_kubeconfig(apiserver.url, kubelogin_user(tmp_path / "kubelogin"))))
    with pytest.raises(AksError, match=f"no Azure AD token for the AKS server application {SERVER_ID}.*az login"):
        connect_aks(CLUSTER, FakeCredential(), transport=arm.transport())


def test_a_missing_cluster_names_subscription_resource_group_and_cluster():
    arm = FakeArm(404, {"error": {"code": "ResourceNotFound", "message": "The Resource "
                                  "'Microsoft.ContainerService/managedClusters/aks-tripgen-prod' under resource group "
                                  "'rg-tripgen-prod' was not found."}})
    with pytest.raises(AksError) as err:
        connect_aks(CLUSTER, FakeCredential(), transport=arm.transport())
    message = str(err.value)
    assert "'aks-tripgen-prod'" in message and "'rg-tripgen-prod'" in message and SUBSCRIPTION in message
    assert "not found (ResourceNotFound)" in message and "cluster.azure" in message


def test_a_forbidden_identity_is_told_which_role_it_needs():
    arm = FakeArm(403, {"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization."}})
    with pytest.raises(AksError, match="Azure Kubernetes Service Cluster User Role"):
        connect_aks(CLUSTER, FakeCredential(), transport=arm.transport())


def test_no_azure_credential_says_how_to_sign_in(monkeypatch):
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    arm = FakeArm(200, {})
    with pytest.raises(AksError) as err:
        connect_aks(CLUSTER, EnvironmentCredential(), transport=arm.transport())
    assert "az login" in str(err.value) and "AZURE_CLIENT_SECRET" in str(err.value) and "workload identity" in str(err.value)
    assert arm.requests == []


def test_the_runtime_uses_an_explicit_kubeconfig_over_the_policys_aks_cluster(tmp_path):
    with running_cluster(tmp_path) as cluster:
        runtime = Runtime(Settings(policy=REPO / "policies" / "tripgen.yaml", kubeconfig=str(cluster.kubeconfig)))
        assert runtime.policy.cluster.azure is not None
        runtime.kube.call(runtime.kube.core.list_namespace)
        assert runtime.kube.api.configuration.host == cluster.base_url


def test_the_runtime_connects_to_the_policys_aks_cluster_without_a_kubeconfig(monkeypatch):
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")  # DefaultAzureCredential, no network
    runtime = Runtime(Settings(policy=REPO / "policies" / "tripgen.yaml", kubeconfig=None))
    with pytest.raises(AksError, match=r"cannot sign in to Azure for the AKS cluster 'aks-tripgen-prod'.*az login"):
        runtime.kube
