"""kopf handlers, kept thin: a daemon per TiKVCluster runs its loop (cluster_loop); ticket edits by people are
recorded; an index of tickets per cluster spares every check a LIST call."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.checks.cluster_loop import ClusterLoop, TicketIndex
from tikv_operator.kube.api import NotLeading, server_message, short_error
from tikv_operator.model.vocabulary import GROUP, VERSION
from tikv_operator.services import Services, options_of, services_of
from tikv_operator.tickets.core.lifecycle import react_to_edit
from tikv_operator.tickets.core.ticket import TicketView

FINALIZER = f"{GROUP}/finalizer"
# Recording a person's edit: a few quick tries inside the handler (kopf does not retry on.event handlers);
# past them the next check records it, from the `recorded` annotation.
RECORD_ATTEMPTS = 3
RECORD_BACKOFF_S = 1.0

log = logging.getLogger("tikv_operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # Our own Events are the transitions; kopf's per-log-line Events would be one API write per check.
    settings.posting.enabled = False
    # No peering CRDs, no namespace/CRD scanning: fewer permissions, and two replicas are safe anyway
    # because ticket names are deterministic (rule 1).
    settings.peering.standalone = True
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    memo.services = await Services.start(options_of(memo))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    services = services_of(memo)
    if services is not None:
        await services.close()


@kopf.index(GROUP, VERSION, "operatortickets")
def tickets_by_cluster(namespace: str, spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict[Any, TicketView]:
    return {(namespace, spec.get("cluster", "")): TicketView.from_resource(body)}


@kopf.daemon(GROUP, VERSION, "tikvclusters", cancellation_timeout=10.0)
async def watch_cluster(name: str, namespace: str, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
                        tickets_by_cluster: TicketIndex, **_: Any) -> None:
    """Checks one TiKVCluster every spec.interval until it is deleted or the operator stops."""
    services = services_of(memo)
    if services is None or services.only_cluster not in (None, name):
        return  # `tikv-operator monitor` watches one cluster of the namespace
    await ClusterLoop(namespace, name, body, services, tickets_by_cluster).run(stopped)


@kopf.on.event(GROUP, VERSION, "operatortickets")
async def ticket_changed(type: str, body: kopf.Body, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """A person held, unheld, acknowledged or resolved a ticket: record it (rule 6) and post the Event.

    Never raises: kopf does not retry on.event handlers. What is not recorded here is recorded by the next
    check of the cluster, which plans the same edit from the same `recorded` annotation."""
    services = services_of(memo)
    if type == "DELETED" or services is None or not services.leadership.acting():
        return  # a standby: the leader records it, or the next check of a new leader does
    writer = services.writer
    view = TicketView.from_resource(body)
    if writer.is_writing(view.name):
        return  # this process is mid-write on it: an intermediate version; a later event or check has the rest
    op = react_to_edit(view, datetime.now(UTC))
    if op is None:
        return
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            # The ticket's TiKVCluster, for the Event on it.
            cluster = await writer.get_cluster(namespace, view.cluster) if op.event is not None else None
            await writer.patch_ticket(namespace, cluster, op)
            return
        except NotLeading:
            return  # the next leader's check records it, from the same `recorded` annotation
        except ApiException as error:
            if error.status in (404, 409):
                return  # deleted, or changed again: its newer version comes as an event of its own
            failure = server_message(error)
        except (TimeoutError, OSError, aiohttp.ClientError) as error:
            failure = short_error(error)
        if attempt == RECORD_ATTEMPTS:
            log.warning("ticket %s: edit not recorded (%s); the next check records it", view.name, failure)
            return
        await asyncio.sleep(RECORD_BACKOFF_S * attempt)

