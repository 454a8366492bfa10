"""A stand-in for kubernetes_asyncio's CoreV1Api that answers read_namespaced_secret from a table, so the
unit tests can make the API server throttle (429), forbid (403) or lose (404) a Secret."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping

from kubernetes_asyncio.client import V1ObjectMeta, V1Secret
from kubernetes_asyncio.client.exceptions import ApiException

OPT_IN = {"tikvops.io/credentials": "true"}


def opted_in_secret(labels: Mapping[str, str] | None = None, kind: str = "Opaque", **values: bytes | str) -> V1Secret:
    """A Secret as the API returns it (values base64-encoded under `data`), labelled to be used unless told."""
    encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in values.items()}
    return V1Secret(type=kind, metadata=V1ObjectMeta(labels=dict(OPT_IN if labels is None else labels)),
                    data=encoded)


def api_error(status: int, reason: str) -> ApiException:
    return ApiException(status=status, reason=reason)


class FakeCore:
    """`answers[(namespace, name)]` is returned, or raised when it is an exception; `reads` counts GETs.
    `delay` keeps each read in flight for a while, so concurrent readers overlap."""

    def __init__(self, answers: Mapping[tuple[str, str], V1Secret | BaseException] | None = None,
                 delay: float = 0.0) -> None:
        self.answers: dict[tuple[str, str], V1Secret | BaseException] = dict(answers or {})
        self.delay = delay
        self.reads: list[tuple[str, str]] = []

    async def read_namespaced_secret(self, name: str, namespace: str) -> V1Secret:
        self.reads.append((namespace, name))
        await asyncio.sleep(self.delay)
        answer = self.answers.get((namespace, name), api_error(404, "Not Found"))
        if isinstance(answer, BaseException):
            raise answer
        return answer
