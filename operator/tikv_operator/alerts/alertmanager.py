"""Alertmanager's API v2 as the operator uses it: post alerts, find, create and expire silences.

Every failure is a DeliveryError whose message a person can act on (the request, the HTTP status or the
network's reason) and that never holds a credential: httpx errors can quote request headers, so only their
type or the OS reason is kept.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tikv_operator.checks.pd_client import (
    MIB,
    AnswerTooLarge,
    TLSSetupError,
    client_ssl_context,
    excerpt,
    read_capped,
    transport_error,
)
from tikv_operator.kube.credentials import (
    NO_ALERTMANAGER_CREDENTIALS,
    AlertmanagerCredentials,
    BasicAuth,
    BearerToken,
    PrometheusAuth,
)
from tikv_operator.model.json_text import load_json

ALERTS_PATH = "/api/v2/alerts"
SILENCES_PATH = "/api/v2/silences"
SILENCE_PATH = "/api/v2/silence/{id}"
# The most of one answer the operator reads: a silence is about 0.5 KiB of JSON and the operator asks only
# for the silences of one ticket's matchers, so 8 MiB is thousands of times what a real answer needs.
ALERTMANAGER_ANSWER_MAX_BYTES = 8 * MIB


class DeliveryError(Exception):
    """A request to an Alertmanager failed; str() says which and why, without secrets."""


def _is_silence(value: Any) -> bool:
    """A silence of the shape API v2 promises, as far as the operator reads one: any other entry is no
    silence of ours (skipped), never an exception in the delivery round."""
    if not isinstance(value, dict):
        return False
    matchers = value.get("matchers")
    return (isinstance(value.get("id"), str) and isinstance(value.get("status"), dict)
            and isinstance(matchers, list) and all(isinstance(m, dict) for m in matchers))


def _headers(auth: PrometheusAuth | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if isinstance(auth, BearerToken):
        headers["Authorization"] = f"Bearer {auth.token}"
    return headers


@dataclass(frozen=True)
class _Answer:
    """An Alertmanager answer, read whole (within ALERTMANAGER_ANSWER_MAX_BYTES)."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class AlertmanagerClient:
    """One Alertmanager, reached with one set of credentials, over a kept-alive connection."""

    def __init__(self, url: str, timeout_s: float,
                 credentials: AlertmanagerCredentials = NO_ALERTMANAGER_CREDENTIALS) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.credentials = credentials
        verify: ssl.SSLContext | bool = True
        if credentials.tls is not None and self.url.startswith("https://"):
            try:
                verify = client_ssl_context(credentials.tls)
            except TLSSetupError as error:
                raise DeliveryError(str(error)) from None
        basic = credentials.auth if isinstance(credentials.auth, BasicAuth) else None
        self._client = httpx.AsyncClient(
            verify=verify, timeout=timeout_s, headers=_headers(credentials.auth),
            auth=httpx.BasicAuth(basic.username, basic.password) if basic else None,
            # No proxy or netrc lookups from the environment: the URL in the spec is where alerts go.
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"AlertmanagerClient({self.url!r}, secrets={self.credentials.secrets})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, *, json: Any = None,
                       params: Mapping[str, Any] | None = None, ok_statuses: Sequence[int] = ()) -> _Answer:
        what = f"{method} {path.split('?')[0]}"
        try:
            async with (asyncio.timeout(self.timeout_s),
                        self._client.stream(method, self.url + path, json=json, params=params) as response):
                answer = _Answer(response.status_code, await read_capped(response, ALERTMANAGER_ANSWER_MAX_BYTES))
        except AnswerTooLarge as error:
            raise DeliveryError(f"{what}: {error}") from None
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryError(f"{what}: no answer within {self.timeout_s:g}s") from None
        except httpx.TransportError as error:
            raise DeliveryError(f"{what}: {transport_error(error)}") from None
        except httpx.HTTPError as error:
            raise DeliveryError(f"{what}: {type(error).__name__}") from None
        if not 200 <= answer.status_code < 300 and answer.status_code not in ok_statuses:
            body = excerpt(answer.text)
            raise DeliveryError(f"{what}: HTTP {answer.status_code} {response.reason_phrase}"
                                + (f": {body}" if body else ""))
        return answer

    async def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        await self._request("POST", ALERTS_PATH, json=list(alerts))

    async def silences(self, matchers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The silences whose matchers include these (Alertmanager's filter: equality matchers only)."""
        filters = [f'{m["name"]}="{m["value"]}"' for m in matchers]
        response = await self._request("GET", SILENCES_PATH, params={"filter": filters})
        try:
            found = load_json(response.text)
        except ValueError:
            raise DeliveryError(f"GET {SILENCES_PATH}: not JSON: {excerpt(response.text)}") from None
        if not isinstance(found, list):
            raise DeliveryError(f"GET {SILENCES_PATH}: not a list of silences: {excerpt(response.text)}")
        return [s for s in found if _is_silence(s)]

    async def create_silence(self, body: Mapping[str, Any]) -> str:
        response = await self._request("POST", SILENCES_PATH, json=dict(body))
        try:
            answer = load_json(response.text)
        except ValueError:
            answer = None
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise DeliveryError(f"POST {SILENCES_PATH}: no silenceID in the answer: {excerpt(response.text)}")
        return silence_id

    async def expire_silence(self, silence_id: str) -> None:
        """Expire it; one already expired or gone (404) is what was wanted."""
        try:
            await self._request("DELETE", SILENCE_PATH.format(id=silence_id), ok_statuses=(404,))
        except DeliveryError as error:
            # 0.25 answers 500 "silence ... already expired" (silence.go expire) to a second expiry.
            if "already expired" not in str(error):
                raise
