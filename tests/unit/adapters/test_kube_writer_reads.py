"""KubeWriter's reads for the edit handler: which tickets it is writing now, and a TiKVCluster (None if gone)."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tikv_operator.kube.writer import KubeWriter

CLUSTER = {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster",
           "metadata": {"name": "basic", "namespace": "ns", "uid": "u-1"}}


def test_the_writer_says_which_tickets_it_is_writing_and_reads_a_cluster() -> None:
    objects = FakeObjects()
    writer = KubeWriter(objects, FakeCore())  # type: ignore[arg-type]
    objects.put("tikvclusters", CLUSTER)
    assert not writer.is_writing("t")
    writer.busy.add("t")
    assert writer.is_writing("t")
    assert asyncio.run(writer.get_cluster("ns", "basic"))["metadata"]["name"] == "basic"
    assert asyncio.run(writer.get_cluster("ns", "gone")) is None
    failing = FakeObjects(lambda verb, name: ApiException(status=503) if verb == "get" else None)
    with pytest.raises(ApiException):
        asyncio.run(KubeWriter(failing, FakeCore()).get_cluster("ns", "basic"))  # type: ignore[arg-type]
