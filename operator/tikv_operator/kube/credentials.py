"""The Secrets a TiKVCluster names: PD's client certificate and Prometheus' credentials.

Values never appear in a repr, a log line or an error: errors name the Secret and the key, nothing more.
A Secret that cannot be used is not an exception but a NotContacted: the probe that needs it is not
attempted, and the check says so (CredentialsAvailable=False) instead of blaming PD or Prometheus.

Trust: whoever may create a TiKVCluster may name any Secret of its namespace and point a URL at their own
server. So only Secrets labelled tikvops.io/credentials=true are used, ServiceAccount tokens never, and a
refused Secret sends nothing anywhere.

Cost: Secrets are read through one SecretCache per process (see there), not once per check per cluster.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client import CoreV1Api, V1Secret
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.checks.core.observation import CredentialsFailure, NotContacted
from tikv_operator.model.cluster_resource import AlertmanagerSpec, TiKVClusterSpec
from tikv_operator.model.vocabulary import LABEL_CREDENTIALS

log = logging.getLogger(__name__)
Credential = TypeVar("Credential")

TLS_KEYS = ("ca.crt", "tls.crt", "tls.key")
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 (a Secret type, not a value)
BEARER_KEY = "token"
BASIC_KEYS = ("username", "password")
HIDDEN = "<hidden>"
# A good copy of a Secret is read again after this long, so a rotated Secret is in use within a minute.
SECRET_TTL_S = 60.0
# A failed read is tried again after this long: a Secret someone just created or labelled is used within
# seconds, while an API server that throttles us still gets at most one GET per Secret per 10 s.
ERROR_TTL_S = 10.0
# A read that fails transiently (429, 5xx, timeout) keeps the last good copy in use, up to this age.
MAX_STALENESS_S = 600.0


class CredentialsError(ValueError):
    """A Secret the operator will not or cannot use (refused: not opted in, a ServiceAccount token, a key
    missing or malformed). The message never holds a secret value."""

    failure: CredentialsFailure = "refused"
    transient = False

    def again(self) -> CredentialsError:
        """The same error, fresh: a cached error raised to many callers must not pile up their tracebacks."""
        return copy.copy(self).with_traceback(None)


class SecretUnreadable(CredentialsError):
    """The API server did not hand the Secret over. `transient` (throttled, failing, timed out) may be
    covered by the last good copy; a 404 or a 403 is the API server's considered answer and never is."""

    failure: CredentialsFailure = "unreadable"

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


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
    """What the probes of one cluster connect with; a `*_problem` says why a named Secret could not be used
    (and so that the probe must not be attempted)."""

    pd_tls: TLSClientCredentials | None = None
    pd_problem: NotContacted | None = None
    prometheus_auth: PrometheusAuth | None = None
    prometheus_problem: NotContacted | None = None
    # Secrets in use from an older copy because re-reading them fails (429, 5xx, timeouts): why, per Secret.
    stale: tuple[str, ...] = ()

    @property
    def pd_error(self) -> str:
        return self.pd_problem.reason if self.pd_problem else ""

    @property
    def prometheus_error(self) -> str:
        return self.prometheus_problem.reason if self.prometheus_problem else ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The Secrets ("namespace/name") loaded for the probes."""
        return tuple(c.secret for c in (self.pd_tls, self.prometheus_auth) if c is not None)


NO_CREDENTIALS = ClusterCredentials()


@dataclass(frozen=True)
class AlertmanagerCredentials:
    """What the operator reaches a cluster's Alertmanagers with (spec.alertmanager's Secrets)."""

    tls: TLSClientCredentials | None = None
    auth: PrometheusAuth | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(c.secret for c in (self.tls, self.auth) if c is not None)


NO_ALERTMANAGER_CREDENTIALS = AlertmanagerCredentials()


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


def _transient(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


async def read_secret(api: CoreV1Api, namespace: str, name: str) -> V1Secret:
    """One GET of the Secret, refused unless it opted in. Raises CredentialsError (SecretUnreadable for
    what the API server said)."""
    where = f"{namespace}/{name}"
    try:
        return opted_in(await api.read_namespaced_secret(name, namespace), where)
    except ApiException as error:
        # The body of an ApiException is a Status object, never the Secret, but say only what is needed.
        if error.status == 404:
            raise SecretUnreadable(f"Secret {where} not found") from None
        if error.status == 403:
            raise SecretUnreadable(f"the operator is not allowed to read Secret {where} (403 Forbidden; the "
                                   "chart grants it in credentialNamespaces)") from None
        raise SecretUnreadable(f"cannot read Secret {where}: HTTP {error.status} {error.reason}",
                               transient=_transient(error.status)) from None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise SecretUnreadable(f"cannot read Secret {where}: {type(error).__name__}", transient=True) from None


@dataclass
class _Entry:
    """What the API server last said about one Secret. `secret` is the last good copy (repr hidden: a
    V1Secret's repr prints its data); `error` the last read's failure, if any."""

    checked_at: float
    secret: V1Secret | None = field(default=None, repr=False)
    good_at: float | None = None
    error: CredentialsError | None = None


class SecretCache:
    """Secrets by namespace/name, shared by every cluster of the process.

    A good copy is used for `ttl_s`, a failure remembered for `error_ttl_s`. A read that fails transiently
    (429, 5xx, timeout) keeps the last good copy in use until it is `max_staleness_s` old, so an API server
    under pressure does not blind every cluster at once; a 404, a 403 or a refusal is authoritative and is
    never masked. Concurrent readers of one Secret share one GET.

    Why not a watch (or a resourceVersion-based list): the chart grants only `get` on secrets, and only in
    credentialNamespaces, on purpose (no list/watch means the operator never holds every Secret of a
    namespace), so a short TTL is what is available."""

    def __init__(self, api: CoreV1Api, *, ttl_s: float = SECRET_TTL_S, error_ttl_s: float = ERROR_TTL_S,
                 max_staleness_s: float = MAX_STALENESS_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._ttl_s, self._error_ttl_s, self._max_staleness_s = ttl_s, error_ttl_s, max_staleness_s
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[_Entry]] = {}

    def __repr__(self) -> str:
        return f"SecretCache({len(self._entries)} Secrets, ttl {self._ttl_s:g}s)"

    async def read(self, namespace: str, name: str) -> V1Secret:
        """The Secret, opted in; raises CredentialsError as read_secret does."""
        key = (namespace, name)
        entry = self._entries.get(key)
        if entry is None or not self._fresh(entry):
            entry = await self._refresh(key)
        return self._value(entry)

    def _fresh(self, entry: _Entry) -> bool:
        ttl = self._error_ttl_s if entry.error is not None else self._ttl_s
        return self._clock() - entry.checked_at < ttl

    def _value(self, entry: _Entry) -> V1Secret:
        if entry.error is None and entry.secret is not None:
            return entry.secret
        assert entry.error is not None
        if self._covered(entry):
            assert entry.secret is not None
            return entry.secret
        raise entry.error.again()

    def staleness(self, namespace: str, name: str) -> str:
        """Why the copy of the Secret in use is not fresh ("" when it is): a condition must not say
        "Loaded" as if all were well while the API server refuses every re-read."""
        entry = self._entries.get((namespace, name))
        if entry is None or not self._covered(entry):
            return ""
        age = self._clock() - (entry.good_at if entry.good_at is not None else self._clock())
        return f"re-reading Secret {namespace}/{name} fails ({entry.error}); using the copy read {age:.0f}s ago"

    def _covered(self, entry: _Entry) -> bool:
        """May the last good copy stand in for the failed read?"""
        return (entry.error is not None and entry.error.transient and entry.secret is not None
                and entry.good_at is not None and self._clock() - entry.good_at <= self._max_staleness_s)

    async def _refresh(self, key: tuple[str, str]) -> _Entry:
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._reading.pop(key, None) if self._reading.get(key) is done
                                      else None)
        # Shielded: one waiter cancelled (its TiKVCluster deleted) must not cancel the read the others await.
        return await asyncio.shield(reading)

    async def _read(self, key: tuple[str, str]) -> _Entry:
        namespace, name = key
        previous = self._entries.get(key)
        try:
            secret = await read_secret(self._api, namespace, name)
        except CredentialsError as error:
            now = self._clock()
            entry = _Entry(checked_at=now, error=error)
            if error.transient and previous is not None and previous.secret is not None:
                entry.secret, entry.good_at = previous.secret, previous.good_at
                if self._covered(entry):
                    log.warning("%s; using the copy read %.0fs ago", error, now - (entry.good_at or now))
        else:
            now = self._clock()
            entry = _Entry(checked_at=now, secret=secret, good_at=now)
        self._entries[key] = entry
        self._forget_unused(now)
        return entry

    def _forget_unused(self, now: float) -> None:
        """Secrets no cluster asked for in a while (their TiKVCluster deleted or changed) leave memory."""
        horizon = max(self._ttl_s, self._error_ttl_s, self._max_staleness_s)
        for key in [k for k, e in self._entries.items() if now - e.checked_at > horizon]:
            del self._entries[key]


async def _credential(secrets: SecretCache, namespace: str, name: str,
                      parse: Callable[[V1Secret, str], Credential], what: str
                      ) -> tuple[Credential | None, NotContacted | None]:
    """One named Secret, read through the cache and parsed; a problem becomes a NotContacted saying what it
    was for ("PD client certificate: Secret ns/x is not labelled ...")."""
    try:
        return parse(await secrets.read(namespace, name), f"{namespace}/{name}"), None
    except CredentialsError as error:
        return None, NotContacted(error.failure, f"{what}: {error}")


async def _nothing() -> tuple[None, None]:
    return None, None


async def load_credentials(secrets: SecretCache, namespace: str, spec: TiKVClusterSpec) -> ClusterCredentials:
    """Read the Secrets the spec names (in the TiKVCluster's namespace). Problems become NotContacted."""
    pd_secret, prom_secret = spec.pd.tls_secret, spec.prometheus.auth_secret
    (pd_tls, pd_problem), (auth, prom_problem) = await asyncio.gather(
        _credential(secrets, namespace, pd_secret.name, tls_from_secret, "PD client certificate")
        if pd_secret else _nothing(),
        _credential(secrets, namespace, prom_secret.name, auth_from_secret, "Prometheus credentials")
        if prom_secret else _nothing(),
    )
    named = sorted({s.name for s in (pd_secret, prom_secret) if s is not None})
    stale = tuple(note for note in (secrets.staleness(namespace, name) for name in named) if note)
    return ClusterCredentials(pd_tls=pd_tls, pd_problem=pd_problem, prometheus_auth=auth,
                              prometheus_problem=prom_problem, stale=stale)


async def load_alertmanager_credentials(secrets: SecretCache, namespace: str, spec: AlertmanagerSpec | None
                                        ) -> tuple[AlertmanagerCredentials, str]:
    """The Secrets spec.alertmanager names, under the same opt-in rule as the probes' (never a ServiceAccount
    token, only Secrets labelled tikvops.io/credentials=true). The second value says why they cannot be
    used ("" when they can): then nothing is sent, rather than sent without the credentials it needs."""
    if spec is None or (spec.tls_secret is None and spec.auth_secret is None):
        return NO_ALERTMANAGER_CREDENTIALS, ""
    (tls, tls_problem), (auth, auth_problem) = await asyncio.gather(
        _credential(secrets, namespace, spec.tls_secret.name, tls_from_secret, "Alertmanager client certificate")
        if spec.tls_secret else _nothing(),
        _credential(secrets, namespace, spec.auth_secret.name, auth_from_secret, "Alertmanager credentials")
        if spec.auth_secret else _nothing(),
    )
    problems = [p.reason for p in (tls_problem, auth_problem) if p is not None]
    if problems:
        return NO_ALERTMANAGER_CREDENTIALS, "; ".join(problems)
    return AlertmanagerCredentials(tls=tls, auth=auth), ""
