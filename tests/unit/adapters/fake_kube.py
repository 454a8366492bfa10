"""In-memory stand-ins for the Kubernetes API calls of the operator, so unit tests can inject what the real
API server does only under load or failure. FakeObjects keeps the API server's resourceVersion rules (a
merge patch that names a version applies only to it, else 409; a create of a taken name is a 409);
FakeCore answers Secret reads from a table (or throttles, forbids, loses them) and keeps the Events posted.
Integration tests run the real API server."""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio.client import V1ObjectMeta, V1Secret
from kubernetes_asyncio.client.exceptions import ApiException

OPT_IN = {"tikvops.io/credentials": "true"}

Fault = Callable[[str, str], ApiException | None]  # (verb, name) -> the error to raise, or None


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeObjects:
    """CustomObjectsApi for one namespace's operatortickets and tikvclusters."""

    def __init__(self, fault: Fault | None = None) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.fault = fault or (lambda verb, name: None)
        self._versions = itertools.count(100)

    def _check(self, verb: str, name: str) -> None:
        error = self.fault(verb, name)
        if error is not None:
            raise error

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(obj)

    def put(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        self.store[(plural, obj["metadata"]["name"])] = obj
        return self._bump(obj)

    async def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                              body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name, body))
        self._check("create", name)
        if (plural, name) in self.store:
            raise ApiException(status=409, reason="AlreadyExists")
        obj = copy.deepcopy(body)
        obj.pop("status", None)  # the status subresource ignores status on create
        return self.put(plural, obj)

    async def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                           name: str) -> dict[str, Any]:
        self.calls.append(("get", name, None))
        self._check("get", name)
        if (plural, name) not in self.store:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(self.store[(plural, name)])

    async def _patch(self, verb: str, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((verb, name, copy.deepcopy(body)))
        self._check(verb, name)
        obj = self.store.get((plural, name))
        if obj is None:
            raise ApiException(status=404, reason="NotFound")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        if verb == "patch_status":
            body = {"status": body.get("status")}
        else:
            body = {k: v for k, v in body.items() if k != "status"}
        merge(obj, body)
        return self._bump(obj)

    async def patch_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                             name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        return await self._patch("patch", plural, name, body)

    async def patch_namespaced_custom_object_status(self, group: str, version: str, namespace: str, plural: str,
                                                    name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        return await self._patch("patch_status", plural, name, body)

    async def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                              name: str, body: Any = None, **_: Any) -> dict[str, Any]:
        self.calls.append(("delete", name, body))
        self._check("delete", name)
        obj = self.store.get((plural, name))
        if obj is None:
            raise ApiException(status=404, reason="NotFound")
        wanted = body.preconditions.resource_version if body is not None and body.preconditions else None
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        del self.store[(plural, name)]
        return {}


def opted_in_secret(labels: Mapping[str, str] | None = None, kind: str = "Opaque", **values: bytes | str) -> V1Secret:
    """A Secret as the API returns it (values base64-encoded under `data`), labelled to be used unless told."""
    encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in values.items()}
    return V1Secret(type=kind, metadata=V1ObjectMeta(labels=dict(OPT_IN if labels is None else labels)),
                    data=encoded)


def api_error(status: int, reason: str) -> ApiException:
    return ApiException(status=status, reason=reason)


class FakeCore:
    """CoreV1Api: `answers[(namespace, name)]` is the Secret read (raised when it is an exception; 404 when
    absent) and `reads` counts GETs, `delay` keeps each read in flight so concurrent readers overlap; `events`
    are the Events posted."""

    def __init__(self, answers: Mapping[tuple[str, str], V1Secret | BaseException] | None = None,
                 delay: float = 0.0) -> None:
        self.answers: dict[tuple[str, str], V1Secret | BaseException] = dict(answers or {})
        self.delay = delay
        self.reads: list[tuple[str, str]] = []
        self.events: list[dict[str, Any]] = []

    async def read_namespaced_secret(self, name: str, namespace: str) -> V1Secret:
        self.reads.append((namespace, name))
        await asyncio.sleep(self.delay)
        answer = self.answers.get((namespace, name), api_error(404, "Not Found"))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.events.append(body)
        return body

    def reasons(self, name: str | None = None) -> list[str]:
        return [e["reason"] for e in self.events if name is None or e["involvedObject"]["name"] == name]
