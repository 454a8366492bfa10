"""Carries out ticket plans and status writes through the Kubernetes API (kubernetes_asyncio)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.kube.api import server_message
from tikv_operator.model.ticket_resource import OperatorTicketSpec
from tikv_operator.model.timestamps import to_rfc3339
from tikv_operator.model.vocabulary import API_VERSION, GROUP, VERSION
from tikv_operator.tickets.core.lifecycle import CreateTicket, DeleteTicket, Operation, PatchTicket, TicketEvent
from tikv_operator.tickets.core.ticket import TicketView, next_ticket_name

MERGE_PATCH = "application/merge-patch+json"
TICKETS = "operatortickets"
CLUSTERS = "tikvclusters"
COMPONENT = "tikv-operator"
# A name taken by a ticket this process did not know about: try the next numbers, a few times only.
MAX_NAME_ATTEMPTS = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """What became of a plan: the tickets whose operation failed, and of those the ones that changed
    under the plan (409: a person edited them meanwhile; the next check plans from their edit)."""

    failed: frozenset[str] = frozenset()
    conflicts: frozenset[str] = frozenset()


class KubeWriter:
    def __init__(self, objects: client.CustomObjectsApi, core: client.CoreV1Api) -> None:
        self.objects = objects
        self.core = core
        # Tickets this process is writing right now. Between the status patch and the labels patch of one
        # transition, the watch shows a ticket whose labels lag its status; the edit handler must not take
        # that for a person's edit and race the second patch (which would then fail, and its Event with it).
        self.busy: set[str] = set()

    @contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        self.busy.add(name)
        try:
            yield
        finally:
            self.busy.discard(name)

    @classmethod
    def connect(cls, api: client.ApiClient) -> KubeWriter:
        return cls(client.CustomObjectsApi(api), client.CoreV1Api(api))

    async def apply(self, namespace: str, cluster: Mapping[str, Any], operations: tuple[Operation, ...]) -> Applied:
        """Apply a plan's operations in order; one failing operation does not stop the others (the next
        check plans again from what is really there)."""
        failed: set[str] = set()
        conflicts: set[str] = set()
        # Several operations on one ticket (record a person's edit, then resolve): each applies to the
        # version the one before wrote, the first to the version the plan was made from.
        versions: dict[str, str] = {}
        for op in operations:
            if op.name in failed:
                continue  # what follows was planned on top of what did not happen
            try:
                with self._writing(op.name):
                    if isinstance(op, CreateTicket):
                        await self._create(namespace, cluster, op)
                    elif isinstance(op, PatchTicket):
                        version = await self.patch_ticket(namespace, cluster, op, versions.get(op.name))
                        if version:
                            versions[op.name] = version
                    else:
                        await self._delete(namespace, cluster, op, versions.get(op.name))
            except ApiException as error:
                failed.add(op.name)
                if error.status == 409 and not isinstance(op, CreateTicket):
                    conflicts.add(op.name)
                    log.info("ticket %s changed since this check read it: planned again next check", op.name)
                else:
                    log.warning("ticket %s: %s", op.name, server_message(error))
        return Applied(frozenset(failed), frozenset(conflicts))

    async def _create(self, namespace: str, cluster: Mapping[str, Any], op: CreateTicket) -> None:
        meta = cluster["metadata"]
        name = op.name
        for _ in range(MAX_NAME_ATTEMPTS):
            body = {
                "apiVersion": API_VERSION,
                "kind": "OperatorTicket",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(op.labels),
                    "annotations": dict(op.annotations),
                    "ownerReferences": [{
                        "apiVersion": API_VERSION, "kind": "TiKVCluster", "name": meta["name"],
                        "uid": meta["uid"], "controller": True,
                    }],
                },
                "spec": without_empty_strings(OperatorTicketSpec(
                    cluster=meta["name"], invariant=op.invariant, store=op.store, held=False).merge_patch()),
            }
            try:
                created = await self.objects.create_namespaced_custom_object(GROUP, VERSION, namespace, TICKETS, body)
            except ApiException as error:
                if error.status != 409:
                    raise
                existing = await self.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, TICKETS, name)
                view = TicketView.from_resource(existing)
                if view.active and view.identity == (op.invariant, op.store):
                    # Rule 1: another writer (a second replica, or this process before a restart) got there
                    # first. Adopt its ticket; the next check keeps it up to date.
                    log.info("ticket %s already exists: adopted", name)
                    return
                name = next_ticket_name(meta["name"], op.invariant, op.store, [name])
                continue
            # The status subresource ignores status on create: write it right after.
            ticket = await self._patch_status(namespace, name, op.status)
            await self.post_event(namespace, ticket or created, cluster, op.event)
            return
        raise ApiException(status=409, reason=f"no free ticket name after {name}")

    async def patch_ticket(self, namespace: str, cluster: Mapping[str, Any] | None, op: PatchTicket,
                           version: str | None = None) -> str:
        """Status first, then labels, spec and the `recorded` annotation: a watcher that sees the new
        labels finds the status they describe, and a recording cut short is done again (its annotation
        was not written). Each patch applies only to the version it was planned on (`version`, else the
        op's): the API server answers 409 if the ticket changed. Returns the version written last."""
        version = version if version is not None else op.resource_version
        ticket: Mapping[str, Any] | None = None
        if op.status:
            ticket = await self._patch_status(namespace, op.name, op.status, version)
            version = _version_of(ticket, version)
        if op.spec or op.labels or op.annotations:
            body: dict[str, Any] = {"metadata": _precondition(version)}
            if op.spec:
                body["spec"] = without_empty_strings(op.spec)
            if op.labels:
                body["metadata"]["labels"] = dict(op.labels)
            if op.annotations:
                body["metadata"]["annotations"] = dict(op.annotations)
            ticket = await self.objects.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, TICKETS, op.name, body, _content_type=MERGE_PATCH)
            version = _version_of(ticket, version)
        if op.event and ticket is not None:
            await self.post_event(namespace, ticket, cluster, op.event)
        return version

    async def _patch_status(self, namespace: str, name: str, status: Mapping[str, Any],
                            version: str = "") -> Mapping[str, Any]:
        body = {"metadata": _precondition(version), "status": without_empty_strings(status)}
        result: Mapping[str, Any] = await self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, TICKETS, name, body, _content_type=MERGE_PATCH)
        return result

    async def _delete(self, namespace: str, cluster: Mapping[str, Any], op: DeleteTicket,
                      version: str | None = None) -> None:
        version = version if version is not None else op.resource_version
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=version) if version else None)
        try:
            await self.objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, TICKETS, op.name,
                                                               body=options)
        except ApiException as error:
            if error.status != 404:
                raise
        await self.post_event(namespace, None, cluster, op.event)

    async def record_silence(self, namespace: str, ticket: str, alertmanager: str, silence_id: str | None) -> None:
        """status.silences[alertmanager] = the id (None removes it). Unconditional: no one else writes it,
        and a merge patch of this one key cannot undo a person's edit."""
        await self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, TICKETS, ticket, {"status": {"silences": {alertmanager: silence_id}}},
            _content_type=MERGE_PATCH)

    async def patch_cluster_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, CLUSTERS, name, {"status": without_empty_strings(status)},
            _content_type=MERGE_PATCH)

    async def post_event(self, namespace: str, ticket: Mapping[str, Any] | None, cluster: Mapping[str, Any] | None,
                         event: TicketEvent) -> None:
        """Rule 10: transitions are Events on the ticket and on its TiKVCluster (`kubectl describe`)."""
        for target in (ticket, cluster):
            if target is None:
                continue
            try:
                await self.core.create_namespaced_event(namespace, _event_body(namespace, target, event))
            except ApiException as error:
                # An Event is a courtesy: losing one must not fail the check.
                log.warning("event %s on %s: %s", event.reason, target["metadata"]["name"], server_message(error))
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                # Nor one the API server did not answer in time: the rest of the plan still applies. (NotLeading
                # is no such failure: the fence stops every write that follows.)
                log.warning("event %s on %s: not posted (%s)", event.reason, target["metadata"]["name"],
                            type(error).__name__)

    def is_writing(self, ticket: str) -> bool:
        """Whether this process is mid-write on the ticket: what the watch shows of it now is an intermediate
        version, not a person's edit."""
        return ticket in self.busy

    async def get_cluster(self, namespace: str, name: str) -> Any:
        """The TiKVCluster as the API server has it; None if it is gone."""
        try:
            return await self.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, CLUSTERS, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise


def _precondition(version: str) -> dict[str, Any]:
    # A merge patch that carries metadata.resourceVersion is applied only to that version (else 409).
    return {"resourceVersion": version} if version else {}


def _version_of(ticket: Mapping[str, Any] | None, default: str) -> str:
    if ticket is None:
        return default
    return str((ticket.get("metadata") or {}).get("resourceVersion") or default)


def without_empty_strings(value: Any) -> Any:
    """Leave out empty strings (readers default them to ""). The test platform's kube-apiserver (1.20.2
    built from Debian's source) decodes "" inside custom resources as null and then rejects it as not a
    string; real API servers accept it, and an absent field means the same to every reader here."""
    if isinstance(value, Mapping):
        return {k: without_empty_strings(v) for k, v in value.items() if v != ""}
    if isinstance(value, list | tuple):
        return [without_empty_strings(v) for v in value]
    return value


def _event_body(namespace: str, target: Mapping[str, Any], event: TicketEvent) -> dict[str, Any]:
    meta = target["metadata"]
    now = to_rfc3339(datetime.now(UTC))
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": {"apiVersion": target.get("apiVersion", API_VERSION), "kind": target.get("kind", ""),
                           "name": meta["name"], "namespace": namespace, "uid": meta.get("uid", "")},
        "reason": event.reason,
        "message": event.message[:1024],
        "type": event.type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
