"""`--discover-tidbclusters`: keep one TiKVCluster per tidb-operator TidbCluster, from what tidb-operator knows
(discovery.core.plan decides; this lists, writes and logs).

A pass every `--discovery-interval`, on the replica that acts (its writes pass the Lease fence like every
other). Without the TidbCluster CRD discovery says once that it is off and looks again each pass, so
installing tidb-operator later needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.discovery.core.plan import TIDB_GROUP, TIDB_VERSION, Create, Delete, Update, plan_discovery
from tikv_operator.election.leadership import Leadership
from tikv_operator.kube.api import NotLeading, server_message, short_error
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
    _said: str = ""  # the last state logged (off, forbidden, on): each is said once, when it begins
    _notes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.objects = client.CustomObjectsApi(self.api)

    async def run(self) -> None:
        while True:
            if self.leadership.acting():
                try:
                    await self.once()
                except NotLeading:
                    pass  # the new leader's pass does it
                except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as error:
                    self._say(f"discovery pass failed ({short_error(error)}); trying again in {self.interval_s:g}s",
                              logging.WARNING)
                except Exception:
                    log.exception("discovery pass failed")  # a bug costs one pass, never the loop
            await asyncio.sleep(self.interval_s)

    async def once(self) -> None:
        try:
            tcs = await self._list(TIDB_GROUP, TIDB_VERSION, "tidbclusters")
        except NotServed:
            self._say("TidbCluster discovery is off: the API server serves no tidbclusters.pingcap.com/v1alpha1 "
                      f"(tidb-operator's CRD is not installed); looking again every {self.interval_s:g}s")
            return
        except ApiException as error:
            if error.status != 403:
                raise
            self._say(f"TidbCluster discovery cannot list TidbClusters: {server_message(error)} (the chart grants "
                      "it with discovery.tidbClusters=true)", logging.WARNING)
            return
        try:
            monitors = await self._list(TIDB_GROUP, TIDB_VERSION, "tidbmonitors")
        except NotServed:
            monitors = []
        tikvclusters = await self._list(GROUP, VERSION, "tikvclusters")
        self._say(f"TidbCluster discovery is on: {len(tcs)} TidbClusters, {len(monitors)} TidbMonitors")
        plan = plan_discovery(tcs, monitors, tikvclusters, self.default_prometheus)
        for note in plan.notes:
            if note not in self._notes:
                log.info("%s", note)
        self._notes = set(plan.notes)
        for action in plan.actions:
            await self._apply(action)

    async def _apply(self, action: Create | Update | Delete) -> None:
        try:
            if isinstance(action, Create):
                meta, spec = action.manifest["metadata"], action.manifest["spec"]
                await self.objects.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"],
                                                                   "tikvclusters", dict(action.manifest))
                log.info("TidbCluster %s/%s: TiKVCluster created (PD %s, Prometheus %s, %d stores mapped to pods)",
                         meta["namespace"], meta["name"], spec["pd"]["url"], spec["prometheus"]["url"],
                         len(spec.get("storePods") or {}))
            elif isinstance(action, Update):
                await self.objects.patch_namespaced_custom_object(
                    GROUP, VERSION, action.namespace, "tikvclusters", action.name, {"spec": dict(action.patch)},
                    _content_type=MERGE_PATCH)
                log.info("TidbCluster %s/%s: TiKVCluster updated: %s", action.namespace, action.name,
                         ", ".join(_changed(action.patch)))
            else:
                await self.objects.delete_namespaced_custom_object(GROUP, VERSION, action.namespace, "tikvclusters",
                                                                   action.name)
                log.info("TidbCluster %s/%s: generated TiKVCluster deleted: %s", action.namespace, action.name,
                         action.reason)
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

    def _say(self, message: str, level: int = logging.INFO) -> None:
        if message != self._said:
            log.log(level, "%s", message)
            self._said = message


def _changed(patch: Mapping[str, Any], prefix: str = "spec") -> list[str]:
    fields: list[str] = []
    for key, value in patch.items():
        if isinstance(value, Mapping) and key not in ("labelMatchers", "storePods"):
            fields.extend(_changed(value, f"{prefix}.{key}"))
        else:
            fields.append(f"{prefix}.{key}")
    return fields
