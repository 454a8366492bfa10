"""The soak's tenants as manifests: the hostile ones beside the well-behaved, each with the soak's timing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from bench.soak.oracle import HOSTILE_PD_KINDS, Settings
from bench.soak.tenants import (
    HOSTILE_KINDS,
    HOSTILE_PD_MODES,
    SLOW_QUERY,
    SMALLEST_ALERTMANAGER_TIMEOUT,
    cluster_manifest,
    hostile_manifest,
    hosts,
)
from harness.hostile_pd import MODES
from pydantic import ValidationError

from tikv_operator.model.cluster_resource import TiKVClusterSpec

REPO = Path(__file__).resolve().parents[3]
S = Settings()
PDS = {"huge": "http://127.0.0.1:1001", "nan": "http://127.0.0.1:1002"}
HOSTS = {"c01": "http://127.0.0.1:2001", "c02": "http://127.0.0.1:2002"}


def manifest(kind: str) -> dict:
    return hostile_manifest(kind, run="soak-1", prometheus_url="http://127.0.0.1:9090",
                            alertmanager_url="http://127.0.0.1:9093", s=S, hostile_pds=PDS, host_pd_urls=HOSTS,
                            host=hosts(HOSTILE_KINDS, list(HOSTS)).get(kind))


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_every_hostile_tenant_is_a_spec_the_operator_accepts_with_the_soaks_timing(kind):
    spec = manifest(kind)["spec"]
    TiKVClusterSpec.model_validate(spec)
    assert spec["interval"] == cluster_manifest("c01", HOSTS["c01"], "p", "soak-1", S)["spec"]["interval"]
    assert manifest(kind)["metadata"]["name"] == f"hostile-{kind}"


def test_each_hostile_tenant_is_hostile_its_own_way():
    assert manifest("huge-pd")["spec"]["pd"] == {"url": PDS["huge"], "timeout": "10s"}
    assert manifest("nan-pd")["spec"]["pd"]["url"] == PDS["nan"]
    slow = manifest("slow-query")["spec"]
    assert (slow["pd"]["url"], slow["prometheus"]["labelMatchers"]) == (HOSTS["c01"],
                                                                      {"soak_run": "soak-1", "soak_cluster": "c01"})
    assert slow["customInvariants"][0]["expr"] == SLOW_QUERY
    quick = manifest("am-timeout")["spec"]
    assert quick["pd"]["url"] == HOSTS["c02"]
    assert quick["alertmanager"] == {"urls": ["http://127.0.0.1:9093"], "timeout": SMALLEST_ALERTMANAGER_TIMEOUT}


def test_the_smallest_alertmanager_timeout_is_the_smallest_the_schema_takes():
    spec = manifest("am-timeout")["spec"]
    spec["alertmanager"]["timeout"] = "-1s"  # a duration is digits and units: nothing below 0s
    with pytest.raises(ValidationError, match=r"alertmanager\.timeout"):
        TiKVClusterSpec.model_validate(spec)


def test_tenants_that_watch_a_cluster_share_one_when_there_is_only_one():
    assert hosts(HOSTILE_KINDS, ["c01"]) == {"slow-query": "c01", "am-timeout": "c01"}
    assert hosts(("huge-pd",), ["c01", "c02"]) == {}
    with pytest.raises(ValueError, match="needs a well-behaved cluster"):
        hostile_manifest("slow-query", run="r", prometheus_url="p", alertmanager_url="a", s=S, hostile_pds=PDS,
                         host_pd_urls=HOSTS, host=None)


def test_the_oracle_the_tenants_and_the_hostile_pds_agree_and_the_limit_is_the_charts():
    assert set(HOSTILE_PD_MODES) == HOSTILE_PD_KINDS
    assert set(HOSTILE_PD_MODES.values()) == set(MODES)
    values = yaml.safe_load((REPO / "charts/tikv-operator/values.yaml").read_text())
    assert values["resources"]["limits"]["memory"] == f"{S.memory_limit_mib:g}Mi"
