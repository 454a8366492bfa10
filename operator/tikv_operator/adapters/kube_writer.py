"""Carries out ticket plans and status writes through the Kubernetes API (kubernetes_asyncio)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.core.lifecycle import CreateTicket, DeleteTicket, Operation, PatchTicket, TicketEvent
from tikv_operator.core.tickets import TicketView, ticket_name, ticket_number, ticket_prefix
from tikv_operator.core.timestamps import to_rfc3339
from tikv_operator.core.vocabulary import API_VERSION, GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"
TICKETS = "operatortickets"
CLUSTERS = "tikvclusters"
COMPONENT = "tikv-operator"
# A name taken by a ticket this process did not know about: try the next numbers, a few times only.
MAX_NAME_ATTEMPTS = 5

log = logging.getLogger(__name__)


class KubeWriter:
    def __init__(self, api: client.ApiClient) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    async def apply(self, namespace: str, cluster: Mapping[str, Any], operations: tuple[Operation, ...]) -> int:
        """Apply a plan's operations in order; one failing operation does not stop the others (the next
        check plans again from what is really there). Returns how many failed."""
        failures = 0
        for op in operations:
            try:
                if isinstance(op, CreateTicket):
                    await self._create(namespace, cluster, op)
                elif isinstance(op, PatchTicket):
                    await self.patch_ticket(namespace, cluster, op)
                else:
                    await self._delete(namespace, cluster, op)
            except ApiException as error:
                failures += 1
                log.warning("ticket %s: %s %s", op.name, error.status, error.reason)
        return failures

    async def _create(self, namespace: str, cluster: Mapping[str, Any], op: CreateTicket) -> None:
        meta = cluster["metadata"]
        name = op.name
        prefix = ticket_prefix(meta["name"], op.invariant, op.store)
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
                "spec": without_empty_strings(
                    {"cluster": meta["name"], "invariant": op.invariant, "store": op.store, "held": False}),
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
                name = ticket_name(meta["name"], op.invariant, op.store, (ticket_number(name, prefix) or 0) + 1)
                continue
            # The status subresource ignores status on create: write it right after.
            ticket = await self._patch_status(namespace, name, op.status)
            await self.post_event(namespace, ticket or created, cluster, op.event)
            return
        raise ApiException(status=409, reason=f"no free ticket name after {name}")

    async def patch_ticket(self, namespace: str, cluster: Mapping[str, Any] | None, op: PatchTicket,
                           labels_first: bool = False) -> None:
        """Status before labels for the operator's own transitions: a watcher that sees the new labels
        finds the status they describe. Labels first when recording a person's edit (the status already
        says what happened), so the edit handler does not see the same edit twice."""
        ticket: Mapping[str, Any] | None = None
        if op.status and not labels_first:
            ticket = await self._patch_status(namespace, op.name, op.status)
        if op.spec or op.labels or op.annotations:
            body: dict[str, Any] = {"metadata": {}}
            if op.spec:
                body["spec"] = without_empty_strings(op.spec)
            if op.labels:
                body["metadata"]["labels"] = dict(op.labels)
            if op.annotations:
                body["metadata"]["annotations"] = dict(op.annotations)
            ticket = await self.objects.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, TICKETS, op.name, body, _content_type=MERGE_PATCH)
        if op.status and labels_first:
            ticket = await self._patch_status(namespace, op.name, op.status)
        if op.event and ticket is not None:
            await self.post_event(namespace, ticket, cluster, op.event)

    async def _patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, TICKETS, name, {"status": without_empty_strings(status)},
            _content_type=MERGE_PATCH)
        return result

    async def _delete(self, namespace: str, cluster: Mapping[str, Any], op: DeleteTicket) -> None:
        try:
            await self.objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, TICKETS, op.name)
        except ApiException as error:
            if error.status != 404:
                raise
        await self.post_event(namespace, None, cluster, op.event)

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
                log.warning("event %s on %s: %s %s", event.reason, target["metadata"]["name"],
                            error.status, error.reason)


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
