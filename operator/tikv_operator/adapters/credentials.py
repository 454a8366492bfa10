"""The Secrets a TiKVCluster names: PD's client certificate and Prometheus' credentials.

Values never appear in a repr, a log line or an error: errors name the Secret and the key, nothing more.
A Secret that cannot be read is not an exception but an error text, which the probes turn into
pd_unreachable / prometheus_unreachable evidence (the check still runs, and says why it cannot connect).

Trust: whoever may create a TiKVCluster may name any Secret of its namespace and point a URL at their own
server. So only Secrets labelled tikvops.io/credentials=true are used, ServiceAccount tokens never, and a
refused Secret sends nothing anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from kubernetes_asyncio.client import CoreV1Api, V1Secret
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.core.cluster_resource import TiKVClusterSpec
from tikv_operator.core.vocabulary import LABEL_CREDENTIALS

TLS_KEYS = ("ca.crt", "tls.crt", "tls.key")
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 (a Secret type, not a value)
BEARER_KEY = "token"
BASIC_KEYS = ("username", "password")
HIDDEN = "<hidden>"


class CredentialsError(ValueError):
    """A Secret is missing, unreadable or lacks a key. The message never holds a secret value."""


@dataclass(frozen=True)
class TLSClientCredentials:
    """PEM bytes of the CA that signed PD's certificate and of the operator's client key pair."""

    secret: str  # "namespace/name", for messages
    ca: bytes
    cert: bytes
    key: bytes

    def __repr__(self) -> str:
        return f"TLSClientCredentials(secret={self.secret!r}, ca={HIDDEN}, cert={HIDDEN}, key={HIDDEN})"


@dataclass(frozen=True)
class BearerToken:
    secret: str
    token: str

    def __repr__(self) -> str:
        return f"BearerToken(secret={self.secret!r}, token={HIDDEN})"


@dataclass(frozen=True)
class BasicAuth:
    secret: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"BasicAuth(secret={self.secret!r}, username={HIDDEN}, password={HIDDEN})"


PrometheusAuth = BearerToken | BasicAuth


@dataclass(frozen=True)
class ClusterCredentials:
    """What the probes of one cluster connect with; an `*_error` says why a named Secret could not be used."""

    pd_tls: TLSClientCredentials | None = None
    pd_error: str = ""
    prometheus_auth: PrometheusAuth | None = None
    prometheus_error: str = ""


NO_CREDENTIALS = ClusterCredentials()


def _decoded(data: Mapping[str, str], key: str, where: str) -> bytes:
    if key not in data or data[key] is None:
        raise CredentialsError(f"Secret {where} has no key {key}")
    try:
        return base64.b64decode(data[key], validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(f"key {key} of Secret {where} is not valid base64") from None


def _text(data: Mapping[str, str], key: str, where: str) -> str:
    # `kubectl create secret --from-file` keeps the file's trailing newline; a header cannot hold one.
    try:
        value = _decoded(data, key, where).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredentialsError(f"key {key} of Secret {where} is not UTF-8 text") from None
    if not value:
        raise CredentialsError(f"key {key} of Secret {where} is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        # requests would refuse the header with an error that quotes it: refuse here, without the value.
        raise CredentialsError(f"key {key} of Secret {where} holds control characters")
    return value


def tls_from_secret(secret: V1Secret, where: str) -> TLSClientCredentials:
    data = secret.data or {}
    ca, cert, key = (_decoded(data, name, where) for name in TLS_KEYS)
    for name, value in zip(TLS_KEYS, (ca, cert, key), strict=True):
        if not value.strip():
            raise CredentialsError(f"key {name} of Secret {where} is empty")
    return TLSClientCredentials(secret=where, ca=ca, cert=cert, key=key)


def auth_from_secret(secret: V1Secret, where: str) -> PrometheusAuth:
    data = secret.data or {}
    if BEARER_KEY in data:
        return BearerToken(secret=where, token=_text(data, BEARER_KEY, where))
    if all(key in data for key in BASIC_KEYS):
        return BasicAuth(secret=where, username=_text(data, "username", where), password=_text(data, "password", where))
    raise CredentialsError(f"Secret {where} has neither key {BEARER_KEY} nor keys username and password")


def opted_in(secret: V1Secret, where: str) -> V1Secret:
    """The Secret, if it may be sent; else why not (no value in the message)."""
    if secret.type == SERVICE_ACCOUNT_TOKEN:
        raise CredentialsError(f"Secret {where} is a ServiceAccount token ({SERVICE_ACCOUNT_TOKEN}), "
                               "which the operator never sends")
    labels = (secret.metadata.labels if secret.metadata else None) or {}
    if labels.get(LABEL_CREDENTIALS) != "true":
        raise CredentialsError(f"Secret {where} is not labelled {LABEL_CREDENTIALS}=true, so the operator "
                               f"does not send it (kubectl label secret {where.split('/', 1)[1]} "
                               f"{LABEL_CREDENTIALS}=true)")
    return secret


async def read_secret(api: CoreV1Api, namespace: str, name: str) -> V1Secret:
    where = f"{namespace}/{name}"
    try:
        return opted_in(await api.read_namespaced_secret(name, namespace), where)
    except ApiException as error:
        # The body of an ApiException is a Status object, never the Secret, but say only what is needed.
        if error.status == 404:
            raise CredentialsError(f"Secret {where} not found") from None
        if error.status == 403:
            raise CredentialsError(f"the operator is not allowed to read Secret {where} (403 Forbidden; the "
                                   "chart grants it in credentialNamespaces)") from None
        raise CredentialsError(f"cannot read Secret {where}: HTTP {error.status} {error.reason}") from None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise CredentialsError(f"cannot read Secret {where}: {type(error).__name__}") from None


async def _pd_tls(api: CoreV1Api, namespace: str, name: str) -> tuple[TLSClientCredentials | None, str]:
    try:
        return tls_from_secret(await read_secret(api, namespace, name), f"{namespace}/{name}"), ""
    except CredentialsError as error:
        return None, f"PD client certificate: {error}"


async def _prometheus_auth(api: CoreV1Api, namespace: str, name: str) -> tuple[PrometheusAuth | None, str]:
    try:
        return auth_from_secret(await read_secret(api, namespace, name), f"{namespace}/{name}"), ""
    except CredentialsError as error:
        return None, f"Prometheus credentials: {error}"


async def _nothing() -> tuple[None, str]:
    return None, ""


async def load_credentials(api: CoreV1Api, namespace: str, spec: TiKVClusterSpec) -> ClusterCredentials:
    """Read the Secrets the spec names (in the TiKVCluster's namespace). Problems become error texts."""
    pd_secret, prom_secret = spec.pd.tls_secret, spec.prometheus.auth_secret
    (pd_tls, pd_error), (auth, prom_error) = await asyncio.gather(
        _pd_tls(api, namespace, pd_secret.name) if pd_secret else _nothing(),
        _prometheus_auth(api, namespace, prom_secret.name) if prom_secret else _nothing(),
    )
    return ClusterCredentials(pd_tls=pd_tls, pd_error=pd_error, prometheus_auth=auth, prometheus_error=prom_error)
