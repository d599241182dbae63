"""AKS: a cluster connection from the user kubeconfig Azure Resource Manager hands out, with
Azure AD tokens from azure-identity in place of the kubelogin binary."""

from __future__ import annotations

import threading
import time
from pathlib import PurePath
from typing import Any

import yaml
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.mgmt.containerservice import ContainerServiceClient
from kubernetes import client, config

from delivery.kube.connection import KubeConnection, RetryPolicy, connection_over
from delivery.policy.models import AzureCluster

REFRESH_MARGIN_SECONDS = 300  # a token closer than this to expiry is replaced before the next request
SIGN_IN = (
    "run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (a service principal), "
    "or run with workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE) or a managed identity"
)


class AksError(RuntimeError):
    """The AKS cluster cannot be reached; the message names what is missing and how to fix it."""


def connect_aks(cluster: AzureCluster, credential: TokenCredential | None = None,
                retry: RetryPolicy | None = None, **arm_options: Any) -> KubeConnection:
    """A connection to `cluster` (DefaultAzureCredential unless given); `arm_options` go to ContainerServiceClient."""
    credential = credential or DefaultAzureCredential()
    kubeconfig = user_kubeconfig(cluster, credential, **arm_options)
    server_id = _detach_aad_login(_current_user(kubeconfig, cluster))
    configuration = client.Configuration()
    config.load_kube_config_from_dict(kubeconfig, client_configuration=configuration, persist_config=False)
    if server_id:
        token = AadToken(credential, server_id)
        token.refresh(configuration)
        configuration.refresh_api_key_hook = token.refresh
    return connection_over(configuration, retry)


def user_kubeconfig(cluster: AzureCluster, credential: TokenCredential, **arm_options: Any) -> dict:
    """The cluster's user kubeconfig from ARM's `listClusterUserCredential`, parsed (never logged)."""
    try:
        with ContainerServiceClient(credential, cluster.subscription_id, **arm_options) as arm:
            result = arm.managed_clusters.list_cluster_user_credentials(cluster.resource_group, cluster.name)
    except ClientAuthenticationError as err:
        raise AksError(f"cannot sign in to Azure for the {cluster.label}: {SIGN_IN}") from err
    except ResourceNotFoundError as err:
        code = err.error.code if err.error else err.reason
        raise AksError(f"{cluster.label} not found ({code}): check cluster.azure in the policy") from err
    except HttpResponseError as err:
        if err.status_code == 403:
            raise AksError(f"the Azure identity may not list the user credentials of the {cluster.label}: "
                           "grant it 'Azure Kubernetes Service Cluster User Role' on the cluster") from err
        raise AksError(f"Azure Resource Manager answered {err.status_code} for the {cluster.label}: {err.reason}") from err
    if not result.kubeconfigs:
        raise AksError(f"Azure returned no kubeconfig for the {cluster.label}")
    return yaml.safe_load(result.kubeconfigs[0].value)


def _current_user(kubeconfig: dict, cluster: AzureCluster) -> dict:
    """The `user` entry of the kubeconfig's current context."""
    try:
        context = next(c["context"] for c in kubeconfig["contexts"] if c["name"] == kubeconfig["current-context"])
        return next(u.get("user") or {} for u in kubeconfig["users"] if u["name"] == context["user"])
    except (KeyError, TypeError, StopIteration):
        raise AksError(f"the kubeconfig Azure returned for the {cluster.label} has no user for its current context") from None


def _detach_aad_login(user: dict) -> str | None:
    """Remove a kubelogin exec or the legacy `azure` auth provider from `user`; the AKS server app id it named."""
    login = user.get("exec") or {}
    provider = user.get("auth-provider") or {}
    if PurePath(login.get("command") or "").stem == "kubelogin":
        server_id = _flag(login.get("args") or [], "--server-id")
    elif provider.get("name") == "azure":
        server_id = (provider.get("config") or {}).get("apiserver-id")
    else:
        return None
    if not server_id:
        raise AksError("the AKS kubeconfig's Azure AD user names no server application (--server-id / apiserver-id)")
    user.pop("exec", None)
    user.pop("auth-provider", None)
    return server_id


def _flag(args: list[str], name: str) -> str | None:
    """The value of `name` in a command line, given as `name value` or `name=value`."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
    return None


class AadToken:
    """Bearer tokens for the AKS server application from azure-identity, replaced before they expire."""

    def __init__(self, credential: TokenCredential, server_id: str) -> None:
        self._credential, self._scope = credential, f"{server_id}/.default"
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def refresh(self, configuration: client.Configuration) -> None:
        """The client's `refresh_api_key_hook`: put a token good for the next request into `configuration`."""
        with self._lock:
            if self._token is None or self._token.expires_on - time.time() < REFRESH_MARGIN_SECONDS:
                try:
                    self._token = self._credential.get_token(self._scope)
                except ClientAuthenticationError as err:
                    raise AksError(f"no Azure AD token for the AKS server application {self._scope}: {SIGN_IN}") from err
            configuration.api_key["BearerToken"] = f"Bearer {self._token.token}"
