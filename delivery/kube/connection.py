"""Connecting to a cluster (kubeconfig or in-cluster) and calling it with retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception

from delivery.retry import retry_after_seconds, retrying
from delivery.timing import timed

T = TypeVar("T")

TRANSIENT_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    """How transient API failures are retried: attempts and exponential backoff with jitter."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 30.0  # a server's Retry-After is honoured up to this


@dataclass
class KubeConnection:
    """An API client plus the retry policy every call goes through."""

    api: client.ApiClient
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call an API method, retrying 429 (honouring Retry-After), 5xx, resets and timeouts."""
        with timed("cluster API"):
            return self._retrying()(fn, *args, **kwargs)

    def _retrying(self) -> Retrying:
        return retrying(
            attempts=self.retry.attempts,
            retry=retry_if_exception(_transient),
            backoff=self.retry.base_delay,
            max_backoff=self.retry.max_delay,
            retry_after=_retry_after,
            max_retry_after=self.retry.max_retry_after,
            sleep=self.sleep,
        )


TRANSIENT_ERRORS = (urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError,
                     urllib3.exceptions.MaxRetryError, ConnectionError)


def _transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, TRANSIENT_ERRORS)


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: connection errors, timeouts and the transient API statuses."""
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, (ConnectionError, TimeoutError, OSError, urllib3.exceptions.HTTPError))


def _retry_after(error: object) -> float | None:
    if not isinstance(error, ApiException):
        return None
    return retry_after_seconds((error.headers or {}).get("Retry-After"))


def connect(kubeconfig: str | None = None, context: str | None = None, retry: RetryPolicy | None = None) -> KubeConnection:
    """A connection from a kubeconfig file (and context), or in-cluster when no file is given."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return connection_over(configuration, retry)


def connection_over(configuration: client.Configuration, retry: RetryPolicy | None = None) -> KubeConnection:
    """A connection over a loaded client configuration."""
    configuration.retries = False  # our own retry loop decides; urllib3 must not retry writes behind it
    return KubeConnection(client.ApiClient(configuration), retry or RetryPolicy())
