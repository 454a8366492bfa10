"""`--discover-tidbclusters`: keep one TiKVCluster per tidb-operator TidbCluster (v1, pingcap.com) and per
Cluster (v2, core.pingcap.com), from what tidb-operator knows (discovery.core.plan and .clusters_v2 decide;
this lists, writes and logs).

A pass every `--discovery-interval`, on the replica that acts (its writes pass the Lease fence like every
other), lists everything again and plans from it: no watch to keep, so a TiKV that got its store id, a store
replaced or a CRD installed meanwhile is followed within one interval, and both APIs share one mechanism.
Without an API's CRD discovery says once that it is off for that API and looks again each pass, so
installing tidb-operator later needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.discovery.core.clusters_v2 import (
    CLUSTER,
    CORE_GROUP,
    CORE_VERSION,
    PLURALS,
    CoreObjects,
    discover_v2,
)
from tikv_operator.discovery.core.plan import (
    TIDB_GROUP,
    TIDB_VERSION,
    TIDBCLUSTER,
    Conflict,
    Create,
    Delete,
    Generated,
    Skipped,
    Source,
    Update,
    plan_discovery,
)
from tikv_operator.election.leadership import Leadership
from tikv_operator.kube.api import NotLeading, server_message, short_error
from tikv_operator.kube.writer import COMPONENT
from tikv_operator.model.timestamps import to_rfc3339
from tikv_operator.model.vocabulary import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"

log = logging.getLogger("tikv_operator")


class NotServed(Exception):
    """The API server does not serve this resource: its CRD is not installed."""


@dataclass
class Discovery:
    api: client.ApiClient
    namespaces: Sequence[str]  # empty: every namespace
    default_prometheus: str
    interval_s: float
    leadership: Leadership
    # The last state logged per subject (each API's off, forbidden, on; a failed pass): said once, when it begins.
    _said: dict[str, str] = field(default_factory=dict)
    _notes: set[str] = field(default_factory=set)
    _reported: set[str] = field(default_factory=set)  # conflicts already posted as an Event by this process

    def __post_init__(self) -> None:
        self.objects = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    async def run(self) -> None:
        while True:
            if self.leadership.acting():
                try:
                    await self.once()
                except NotLeading:
                    pass  # the new leader's pass does it
                except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as error:
                    self._say("pass", f"discovery pass failed ({short_error(error)}); trying again in "
                              f"{self.interval_s:g}s", logging.WARNING)
                except Exception:
                    log.exception("discovery pass failed")  # a bug costs one pass, never the loop
            await asyncio.sleep(self.interval_s)

    async def once(self) -> None:
        v1 = await self._read_v1()
        v2 = await self._read_v2()
        if v1 is None and v2 is None:
            return
        tikvclusters = await self._list(GROUP, VERSION, "tikvclusters")
        listed: list[Source] = [TIDBCLUSTER] if v1 is not None else []
        others: list[Generated | Skipped] = []
        if v2 is not None:
            listed.append(CLUSTER)
            others = discover_v2(v2, self.default_prometheus)
        tcs, monitors = v1 if v1 is not None else ([], [])
        plan = plan_discovery(tcs, monitors, tikvclusters, self.default_prometheus, others, listed)
        for note in plan.notes:
            if note not in self._notes:
                log.info("%s", note)
        self._notes = set(plan.notes)
        for conflict in plan.conflicts:
            await self._report(conflict)
        for action in plan.actions:
            await self._apply(action)

    async def _read_v1(self) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]] | None:
        """TidbClusters and TidbMonitors; None when they cannot be listed (not installed, forbidden)."""
        try:
            tcs = await self._list(TIDB_GROUP, TIDB_VERSION, "tidbclusters")
        except NotServed:
            self._say("v1", "TidbCluster discovery is off: the API server serves no tidbclusters.pingcap.com/"
                      f"v1alpha1 (tidb-operator's CRD is not installed); looking again every {self.interval_s:g}s")
            return None
        except ApiException as error:
            if error.status != 403:
                raise
            self._say("v1", f"TidbCluster discovery cannot list TidbClusters: {server_message(error)} (the chart "
                      "grants it with discovery.tidbClusters=true)", logging.WARNING)
            return None
        try:
            monitors = await self._list(TIDB_GROUP, TIDB_VERSION, "tidbmonitors")
        except NotServed:
            monitors = []
        self._say("v1", f"TidbCluster discovery is on: {len(tcs)} TidbClusters, {len(monitors)} TidbMonitors")
        return tcs, monitors

    async def _read_v2(self) -> CoreObjects | None:
        """tidb-operator v2's Clusters and the objects that point at them; None when the Clusters cannot be
        listed (v2 not installed, forbidden). A kind whose CRD is absent (TiFlash) is an empty list."""
        what = f"{CLUSTER.display} discovery (tidb-operator v2)"
        try:
            clusters = await self._list(CORE_GROUP, CORE_VERSION, "clusters")
            lists: dict[str, list[Mapping[str, Any]]] = {}
            for plural in PLURALS:
                try:
                    lists[plural] = await self._list(CORE_GROUP, CORE_VERSION, plural)
                except NotServed:
                    lists[plural] = []
        except NotServed:
            self._say("v2", f"{what} is off: the API server serves no clusters.core.pingcap.com/v1alpha1 "
                      f"(tidb-operator v2's CRDs are not installed); looking again every {self.interval_s:g}s")
            return None
        except ApiException as error:
            if error.status != 403:
                raise
            self._say("v2", f"{what} cannot list: {server_message(error)} (the chart grants it with "
                      "discovery.tidbClusters=true)", logging.WARNING)
            return None
        objects = CoreObjects(clusters, lists["pdgroups"], lists["tikvgroups"], lists["tikvs"], lists["tiflashes"])
        self._say("v2", f"{what} is on: {len(clusters)} Clusters, {len(objects.tikvgroups)} TiKVGroups, "
                  f"{len(objects.tikvs)} TiKVs")
        return objects

    async def _report(self, conflict: Conflict) -> None:
        """A Warning Event on the cluster whose TiKVCluster is another's (`kubectl describe` shows it), once
        per process; the log line is the plan's note."""
        if conflict.message in self._reported:
            return
        self._reported.add(conflict.message)
        loser = conflict.loser
        now = to_rfc3339(datetime.now(UTC))
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{loser.name}.{secrets.token_hex(8)}", "namespace": loser.namespace},
            "involvedObject": {"apiVersion": loser.source.api_version, "kind": loser.source.kind,
                               "name": loser.name, "namespace": loser.namespace, "uid": loser.owner_uid},
            "reason": "DiscoveryConflict", "message": conflict.message[:1024], "type": "Warning",
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            await self.core.create_namespaced_event(loser.namespace, body)
        except ApiException as error:
            log.warning("discovery: event DiscoveryConflict on %s/%s: %s", loser.namespace, loser.name,
                        server_message(error))

    async def _apply(self, action: Create | Update | Delete) -> None:
        try:
            if isinstance(action, Create):
                meta, spec = action.manifest["metadata"], action.manifest["spec"]
                await self.objects.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"],
                                                                   "tikvclusters", dict(action.manifest))
                log.info("%s %s/%s: TiKVCluster created (PD %s, Prometheus %s, %d stores mapped to pods)",
                         _display(action.manifest), meta["namespace"], meta["name"], spec["pd"]["url"],
                         spec["prometheus"]["url"], len(spec.get("storePods") or {}))
            elif isinstance(action, Update):
                await self.objects.patch_namespaced_custom_object(
                    GROUP, VERSION, action.namespace, "tikvclusters", action.name, {"spec": dict(action.patch)},
                    _content_type=MERGE_PATCH)
                log.info("%s %s/%s: TiKVCluster updated: %s", action.display, action.namespace, action.name,
                         ", ".join(_changed(action.patch)))
            else:
                await self.objects.delete_namespaced_custom_object(GROUP, VERSION, action.namespace, "tikvclusters",
                                                                   action.name)
                log.info("%s %s/%s: generated TiKVCluster deleted: %s", action.display, action.namespace,
                         action.name, action.reason)
        except ApiException as error:
            if error.status in (404, 409):
                return  # changed meanwhile (deleted, created by another pass): the next pass sees it as it is
            log.warning("discovery: %s", server_message(error))

    async def _list(self, group: str, version: str, plural: str) -> list[Mapping[str, Any]]:
        try:
            if not self.namespaces:
                answer = await self.objects.list_cluster_custom_object(group, version, plural)
                return list(answer.get("items") or [])
            items: list[Mapping[str, Any]] = []
            for namespace in self.namespaces:
                answer = await self.objects.list_namespaced_custom_object(group, version, namespace, plural)
                items.extend(answer.get("items") or [])
            return items
        except ApiException as error:
            if error.status == 404:
                raise NotServed(plural) from None
            raise

    def _say(self, subject: str, message: str, level: int = logging.INFO) -> None:
        if message != self._said.get(subject):
            log.log(level, "%s", message)
            self._said[subject] = message


def _display(manifest: Mapping[str, Any]) -> str:
    """How the log names the owner of a TiKVCluster to create: TidbCluster, Cluster.core.pingcap.com."""
    owner = (manifest["metadata"].get("ownerReferences") or [{}])[0]
    return next((s.display for s in (TIDBCLUSTER, CLUSTER) if s.api_version == owner.get("apiVersion")),
                str(owner.get("kind", "")))


def _changed(patch: Mapping[str, Any], prefix: str = "spec") -> list[str]:
    fields: list[str] = []
    for key, value in patch.items():
        if isinstance(value, Mapping) and key not in ("labelMatchers", "storePods"):
            fields.extend(_changed(value, f"{prefix}.{key}"))
        else:
            fields.append(f"{prefix}.{key}")
    return fields
