"""PD's HTTP API as a check reads it: one GET /pd/api/v1/stores, within the spec's timeout.

PD misbehaving (down, hung, 500, half a body, another shape) is an observation, never an exception:
the answer is a PDObservation with reachable False and a short reason a person can act on.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import tempfile
from dataclasses import replace
from pathlib import Path

import httpx

from tikv_operator.checks.core.observation import TOMBSTONE, PDObservation, Store
from tikv_operator.checks.core.pd_model import PDAnswerError, parse_stores
from tikv_operator.kube.credentials import TLSClientCredentials
from tikv_operator.model.json_text import load_json

STORES_PATH = "/pd/api/v1/stores"
TOMBSTONES_PATH = STORES_PATH + "?state=2"  # metapb.StoreState Tombstone; PD's default list leaves them out
BODY_EXCERPT_CHARS = 200
MIB = 1024 * 1024
# The most of one PD answer the operator reads. A store of PD's /stores answer is about 1-1.5 KiB of JSON
# (10,000 stores: 10-15 MiB, far beyond any real TiKV cluster), so 32 MiB is room for twice that; more is
# not PD answering but something hostile or broken, and reading it whole would take the memory every other
# cluster's checks need (the chart gives the process 256 MiB).
PD_ANSWER_MAX_BYTES = 32 * MIB
# Answers larger than this are parsed in a worker thread: parsing a few thousand stores takes tens of ms,
# which the event loop (the Lease's renewals, /healthz, every other cluster's checks) must not wait for.
PARSE_INLINE_MAX_BYTES = 256 * 1024


class AnswerTooLarge(Exception):
    """An answer longer than the operator reads; str() is the reason, in the words the docs use."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer too large: it exceeded {limit / MIB:g} MiB")


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response, read chunk by chunk, at most `limit` bytes once decoded (a gzip
    bomb counts at its unpacked size); AnswerTooLarge beyond, without reading the rest."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise AnswerTooLarge(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(limit)
    return bytes(body)


class TLSSetupError(ValueError):
    """The client certificate could not be loaded; the message names the Secret, never its content."""


def excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """One line of at most `limit` characters of an answer body, for an error message."""
    text = text.strip()
    try:
        decoded = load_json(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, str):
        text = decoded  # PD renders its errors as a JSON string: show the message, not the quotes
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def network_reason(error: BaseException) -> str | None:
    """The operating system's reason behind a client library's connection error ("Connection refused"),
    found down the chain of causes; None when there is none."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ... (_ssl.c:1006)"
            return "TLS: " + str(current).split(" (_ssl.c")[0]
        if isinstance(current, OSError) and current.errno is not None and current.errno > 0:
            return os.strerror(current.errno)
        if isinstance(current, OSError) and current.strerror and current.errno is not None:
            return str(current.strerror)  # socket.gaierror: "Name or service not known"
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        # urllib3 keeps the cause in `.reason`, requests in args[0].
        pending.extend(
            e for e in (current.__cause__, current.__context__, getattr(current, "reason", None),
                        *current.args[:1])
            if isinstance(e, BaseException)
        )
    return None


def _refuse_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key and hang the operator.
    return b""


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


@functools.lru_cache(maxsize=32)
def client_ssl_context(tls: TLSClientCredentials) -> ssl.SSLContext:
    """An SSLContext that trusts only the Secret's CA and presents its key pair. Cached per Secret content,
    so key material is written to disk once per certificate, not once per check."""
    try:
        ca: str | bytes = tls.ca.decode("ascii")
    except UnicodeDecodeError:
        ca = tls.ca  # DER
    try:
        context = ssl.create_default_context(cadata=ca)
    except (ssl.SSLError, ValueError):
        raise TLSSetupError(f"ca.crt of Secret {tls.secret} is not a PEM or DER certificate") from None
    # The stdlib loads a key pair only from files: write both to a directory only this user can read
    # (mkdtemp makes it 0700), load them, and delete them before returning.
    try:
        with tempfile.TemporaryDirectory(prefix="tikv-operator-tls-") as directory:
            cert_path, key_path = Path(directory, "tls.crt"), Path(directory, "tls.key")
            try:
                _write_private(cert_path, tls.cert)
                _write_private(key_path, tls.key)
            except OSError as error:
                raise TLSSetupError(f"cannot write the client key pair to {directory}: {error.strerror}") from None
            try:
                context.load_cert_chain(cert_path, key_path, password=_refuse_password)
            except (ssl.SSLError, ValueError):
                raise TLSSetupError(
                    f"tls.crt and tls.key of Secret {tls.secret} are not a matching unencrypted PEM key pair"
                ) from None
    except OSError as error:  # no writable temporary directory (a read-only root file system without /tmp)
        raise TLSSetupError(f"no temporary directory for the client key pair: {error.strerror}") from None
    return context


@functools.cache
def _public_ca_context() -> ssl.SSLContext:
    """httpx's default verification (the certifi bundle), built once: loading the bundle into a new
    context on every check cost ~20 ms of CPU, more than the rest of a check's PD work."""
    return httpx.create_ssl_context()


def transport_error(error: httpx.TransportError) -> str:
    reason = network_reason(error)
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect: {reason or 'connection failed'}"
    # Only the type: some httpx errors quote request headers back.
    return f"connection failed while reading the answer: {reason or type(error).__name__}"


async def read_stores(url: str, timeout_s: float, tls: TLSClientCredentials | None = None,
                      confirm: frozenset[str] = frozenset()) -> PDObservation:
    """GET {url}/pd/api/v1/stores. `tls` is used for an https URL; the CA in it is then the only one trusted.

    `confirm` names stores that have tickets: when PD's list leaves one out, one more request
    (`?state=2`) tells a store removed on purpose (Tombstone) from one PD has lost track of."""
    verify: ssl.SSLContext = _public_ca_context()
    if tls is not None and url.startswith("https://"):
        try:
            verify = client_ssl_context(tls)
        except TLSSetupError as error:
            return PDObservation(url=url, reachable=False, error=str(error))
    request = f"GET {STORES_PATH}"
    try:
        # httpx's timeout bounds each phase; the outer one bounds the whole request (a PD that trickles).
        async with asyncio.timeout(timeout_s), httpx.AsyncClient(verify=verify, timeout=timeout_s) as client:
            status, reason, body = await _get(client, url.rstrip("/") + STORES_PATH)
            observation = await _stores_observation(url, request, status, reason, body)
            missing = confirm - {s.id for s in observation.stores}
            if observation.reachable and missing:
                return await _confirm_tombstones(client, url, observation, missing)
            return observation
    except (TimeoutError, httpx.TimeoutException):
        return PDObservation(url=url, reachable=False, error=f"{request}: no answer within {timeout_s:g}s")
    except AnswerTooLarge as error:
        # Like any answer PD should not give (rule 5): the stores are unknown, pd_unreachable judges PD.
        return PDObservation(url=url, reachable=False, error=f"{request}: {error}")
    except httpx.TransportError as error:
        return PDObservation(url=url, reachable=False, error=f"{request}: {transport_error(error)}")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return PDObservation(url=url, reachable=False, error=f"{request}: {type(error).__name__}")


async def _get(client: httpx.AsyncClient, url: str) -> tuple[int, str, bytes]:
    """GET, read streaming up to PD_ANSWER_MAX_BYTES: status, reason phrase, body."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        return response.status_code, response.reason_phrase, await read_capped(response, PD_ANSWER_MAX_BYTES)


def _observed(body: bytes) -> tuple[Store, ...]:
    return parse_stores(body).observed()


async def parsed_stores(body: bytes) -> tuple[Store, ...]:
    """PD's stores, parsed in a worker thread when the answer is big (PDAnswerError when it is no list)."""
    if len(body) <= PARSE_INLINE_MAX_BYTES:
        return _observed(body)
    return await asyncio.to_thread(_observed, body)


async def _stores_observation(url: str, request: str, status: int, reason: str, body: bytes) -> PDObservation:
    if not 200 <= status < 300:
        detail = excerpt(body.decode("utf-8", "replace"))
        return PDObservation(
            url=url, reachable=False, error=f"{request}: HTTP {status} {reason}" + (f": {detail}" if detail else ""),
        )
    try:
        stores = await parsed_stores(body)
    except PDAnswerError as error:
        return PDObservation(url=url, reachable=False, error=f"{request}: {excerpt(str(error))}")
    return PDObservation(url=url, reachable=True, stores=stores)


async def _confirm_tombstones(client: httpx.AsyncClient, url: str, observation: PDObservation,
                              missing: frozenset[str] | set[str]) -> PDObservation:
    """Rule 12: only a Tombstone record proves a store was removed on purpose. If this request fails, the
    missing stores stay unknown (their tickets as they are); the main answer still counts."""
    try:
        status, _reason, body = await _get(client, url.rstrip("/") + TOMBSTONES_PATH)
        listed = await parsed_stores(body) if 200 <= status < 300 else None
    except (httpx.HTTPError, PDAnswerError, AnswerTooLarge):
        listed = None
    if listed is None:
        return observation
    tombstones = tuple(s for s in listed if s.id in missing and s.state_name == TOMBSTONE)
    found = {s.id for s in tombstones}
    return replace(observation, tombstones=tombstones, unlisted=tuple(sorted(set(missing) - found)))
