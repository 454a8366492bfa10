"""PD's HTTP API as a check reads it: one GET /pd/api/v1/stores, within the spec's timeout.

PD misbehaving (down, hung, 500, half a body, another shape) is an observation, never an exception:
the answer is a PDObservation with reachable False and a short reason a person can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from tikv_operator.checks import answer_budget
from tikv_operator.checks.answer_budget import BudgetExhausted, Lease
from tikv_operator.checks.core.observation import TOMBSTONE, PDObservation, Store
from tikv_operator.checks.core.pd_model import PDAnswerError, PDAnswerTooLarge, parse_stores
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
# The cap is per answer, the memory per process: parsed, 30 MiB of valid JSON became ~290 MiB of Python
# objects (json.loads ~3x the bytes, the validated stores ~3 KiB each). So an answer is also bounded by what it
# lists. Real TiKV clusters run at most a few thousand stores; 10,000 is beyond any.
MAX_STORES = 10_000
# A store as PD lists it is about 40-60 JSON values (commas) and a few objects and lists; 100 per store leaves
# room for fields PD adds. Counted on the bytes before json.loads: a hostile answer of tiny values (`[],` is
# 3 bytes and a 56-byte list) would otherwise cost 20x its size before any store could be counted. Commas or
# brackets inside strings count too, which only errs on the side of refusing.
MAX_JSON_ELEMENTS = MAX_STORES * 100


class AnswerTooLarge(Exception):
    """An answer longer than the operator reads; str() is the reason, in the words the docs use."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer too large: it exceeded {limit / MIB:g} MiB")


async def read_capped(response: httpx.Response, limit: int,
                      grown: Callable[[int], Awaitable[None]] | None = None) -> bytes:
    """The body of a streamed response, read chunk by chunk, at most `limit` bytes once decoded (a gzip
    bomb counts at its unpacked size); AnswerTooLarge beyond, without reading the rest. `grown(size)` is
    awaited before the body grows to `size` (a budget may make the read wait there)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise AnswerTooLarge(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > limit:
            raise AnswerTooLarge(limit)
        if grown is not None:
            await grown(len(body) + len(chunk))
        body += chunk
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
    claim = Lease()
    try:
        # httpx's timeout bounds each phase; the outer one bounds the whole request (a PD that trickles) and
        # the wait for memory a big answer needs (answer_budget).
        async with asyncio.timeout(timeout_s), httpx.AsyncClient(verify=verify, timeout=timeout_s) as client:
            try:
                status, reason, body = await _get(client, url.rstrip("/") + STORES_PATH, claim)
                observation = await _stores_observation(url, request, status, reason, body, claim)
                del body  # the bytes go back before the tombstone request reads any
            finally:
                claim.release()
            missing = confirm - {s.id for s in observation.stores}
            if observation.reachable and missing:
                return await _confirm_tombstones(client, url, observation, missing)
            return observation
    except (TimeoutError, httpx.TimeoutException):
        if claim.waiting:
            # Rule 5: unknown for this cluster; its own PD may be fine, the operator chose not to read it now.
            return PDObservation(url=url, reachable=False, error=f"{request}: {BudgetExhausted()}")
        return PDObservation(url=url, reachable=False, error=f"{request}: no answer within {timeout_s:g}s")
    except AnswerTooLarge as error:
        # Like any answer PD should not give (rule 5): the stores are unknown, pd_unreachable judges PD.
        return PDObservation(url=url, reachable=False, error=f"{request}: {error}")
    except httpx.TransportError as error:
        return PDObservation(url=url, reachable=False, error=f"{request}: {transport_error(error)}")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return PDObservation(url=url, reachable=False, error=f"{request}: {type(error).__name__}")


async def _get(client: httpx.AsyncClient, url: str, claim: Lease) -> tuple[int, str, bytes]:
    """GET, read streaming up to PD_ANSWER_MAX_BYTES, a big answer within the process' budget (`claim`):
    status, reason phrase, body."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        body = await read_capped(response, PD_ANSWER_MAX_BYTES, claim.grow)
        return response.status_code, response.reason_phrase, body


def _observed(body: bytes) -> tuple[Store, ...]:
    elements = body.count(b",") + body.count(b"{") + body.count(b"[")
    if elements > MAX_JSON_ELEMENTS:
        raise PDAnswerTooLarge(f"answer too large: it holds over {MAX_JSON_ELEMENTS:,} JSON values "
                               f"(more than {MAX_STORES:,} stores would)")
    return parse_stores(body, MAX_STORES).observed()


@dataclass(frozen=True)
class _Refused:
    too_large: bool
    reason: str

    def error(self) -> PDAnswerError:
        return (PDAnswerTooLarge if self.too_large else PDAnswerError)(self.reason)


def _observed_or_refused(body: bytes) -> tuple[Store, ...] | _Refused:
    # An exception raised in the worker would keep, through its traceback's frames, the whole body alive in a
    # reference cycle until the garbage collector ran: 30 MiB per refused answer, piling up across clusters.
    try:
        return _observed(body)
    except PDAnswerError as error:
        return _Refused(isinstance(error, PDAnswerTooLarge), str(error))


async def parsed_stores(body: bytes, claim: Lease | None = None) -> tuple[Store, ...]:
    """PD's stores, parsed in a worker thread when the answer is big (PDAnswerError when it is no list,
    PDAnswerTooLarge when it lists more than the operator reads). A big answer is parsed under `claim`'s slot,
    which stays taken until the parse ends even if the caller stops waiting."""
    if len(body) <= PARSE_INLINE_MAX_BYTES:
        return _observed(body)
    async with contextlib.AsyncExitStack() as stack:
        if claim is None:
            claim = await stack.enter_async_context(answer_budget.lease())
        await claim.grow(len(body))
        outcome = await claim.run(functools.partial(_observed_or_refused, body))
    if isinstance(outcome, _Refused):
        raise outcome.error()
    return outcome


async def _stores_observation(url: str, request: str, status: int, reason: str, body: bytes,
                              claim: Lease | None = None) -> PDObservation:
    if not 200 <= status < 300:
        detail = excerpt(body.decode("utf-8", "replace"))
        return PDObservation(
            url=url, reachable=False, error=f"{request}: HTTP {status} {reason}" + (f": {detail}" if detail else ""),
        )
    try:
        stores = await parsed_stores(body, claim)
    except PDAnswerError as error:
        return PDObservation(url=url, reachable=False, error=f"{request}: {excerpt(str(error))}")
    return PDObservation(url=url, reachable=True, stores=stores)


async def _confirm_tombstones(client: httpx.AsyncClient, url: str, observation: PDObservation,
                              missing: frozenset[str] | set[str]) -> PDObservation:
    """Rule 12: only a Tombstone record proves a store was removed on purpose. If this request fails, the
    missing stores stay unknown (their tickets as they are); the main answer still counts."""
    try:
        async with answer_budget.lease() as claim:
            status, _reason, body = await _get(client, url.rstrip("/") + TOMBSTONES_PATH, claim)
            listed = await parsed_stores(body, claim) if 200 <= status < 300 else None
    except (httpx.HTTPError, PDAnswerError, AnswerTooLarge):
        listed = None
    if listed is None:
        return observation
    tombstones = tuple(s for s in listed if s.id in missing and s.state_name == TOMBSTONE)
    found = {s.id for s in tombstones}
    return replace(observation, tombstones=tombstones, unlisted=tuple(sorted(set(missing) - found)))
