"""The Lease as a lock: read, create and replace one coordination.k8s.io/v1 Lease with optimistic
concurrency (a replace carries the resourceVersion it read; the API server answers 409 if anyone wrote
in between), as client-go's LeaseLock does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.election.core.leases import LeaseRecord
from tikv_operator.model.timestamps import from_rfc3339, to_rfc3339_micro

FIELD_MANAGER = "tikv-operator"


class LeaseLock:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, timeout_s: float) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.timeout_s = timeout_s

    @property
    def where(self) -> str:
        return f"lease {self.namespace}/{self.name}"

    async def get(self) -> tuple[LeaseRecord, str] | None:
        """The record and its resourceVersion; None when there is no Lease yet."""
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace,
                                                            _request_timeout=self.timeout_s)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        spec = lease.spec
        record = LeaseRecord(
            holder=spec.holder_identity or "", duration_s=spec.lease_duration_seconds or 0,
            acquire_time=_aware(spec.acquire_time), renew_time=_aware(spec.renew_time),
            transitions=spec.lease_transitions or 0)
        return record, lease.metadata.resource_version

    async def create(self, record: LeaseRecord) -> str:
        """Returns the new resourceVersion; 409 (ApiException) when another replica created it first."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": _spec(record)}
        created = await self.leases.create_namespaced_lease(self.namespace, body, field_manager=FIELD_MANAGER,
                                                            _request_timeout=self.timeout_s)
        return str(created.metadata.resource_version)

    async def replace(self, record: LeaseRecord, version: str) -> str:
        """Write `record` over the version read; 409 (ApiException) when the Lease changed since."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": version},
                "spec": _spec(record)}
        replaced = await self.leases.replace_namespaced_lease(self.name, self.namespace, body,
                                                              field_manager=FIELD_MANAGER,
                                                              _request_timeout=self.timeout_s)
        return str(replaced.metadata.resource_version)


def _spec(record: LeaseRecord) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": record.holder, "leaseDurationSeconds": record.duration_s,
                            "leaseTransitions": record.transitions}
    if record.acquire_time is not None:
        spec["acquireTime"] = to_rfc3339_micro(record.acquire_time)
    if record.renew_time is not None:
        spec["renewTime"] = to_rfc3339_micro(record.renew_time)
    return spec


def _aware(moment: datetime | str | None) -> datetime | None:
    if moment is None or isinstance(moment, datetime):
        return moment
    return from_rfc3339(moment)
