"""Each PD fault looks, to a client, the way a real failing PD looks."""

import json

import httpx
import pytest

from tikv_sim.embedded import SimulatorThread
from tikv_sim.pd_payloads import NOT_BOOTSTRAPPED


def test_500(sim: SimulatorThread, pd: httpx.Client) -> None:
    sim.fault({"fault": "pd", "mode": "500"})
    response = pd.get("/stores")
    assert response.status_code == 500
    assert isinstance(response.json(), str)  # PD renders errors as a JSON string
    sim.fault({"fault": "pd", "mode": "ok"})
    assert pd.get("/stores").status_code == 200


def test_hang_outlasts_a_client_timeout(sim: SimulatorThread) -> None:
    sim.fault({"fault": "pd", "mode": "hang", "hang_seconds": 5})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{sim.pd_url}/pd/api/v1/stores", timeout=0.3)
    sim.fault({"fault": "pd", "mode": "ok"})
    assert httpx.get(f"{sim.pd_url}/pd/api/v1/health", timeout=2).status_code == 200


def test_malformed_body(sim: SimulatorThread, pd: httpx.Client) -> None:
    sim.fault({"fault": "pd", "mode": "malformed"})
    response = pd.get("/stores")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_wrong_shape(sim: SimulatorThread, pd: httpx.Client) -> None:
    sim.fault({"fault": "pd", "mode": "wrong-shape"})
    stores = pd.get("/stores")
    assert stores.status_code == 200
    assert isinstance(stores.json(), list)  # valid JSON, but /stores promises an object
    assert isinstance(pd.get("/health").json(), dict)  # and /health promises a list


def test_unreachable_refuses_connections_until_healed(sim: SimulatorThread) -> None:
    url = f"{sim.pd_url}/pd/api/v1/stores"
    sim.fault({"fault": "pd", "mode": "unreachable"})
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.pd_url}/metrics", timeout=2)
    sim.fault({"fault": "pd", "mode": "ok"})
    assert httpx.get(url, timeout=2).status_code == 200  # same port as before


def test_unreachable_drops_kept_alive_connections_too(sim: SimulatorThread, pd: httpx.Client) -> None:
    assert pd.get("/health").status_code == 200  # the client now holds an open connection
    sim.fault({"fault": "pd", "mode": "unreachable"})
    with pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
        pd.get("/health")


def test_not_bootstrapped(sim: SimulatorThread, pd: httpx.Client) -> None:
    sim.fault({"fault": "pd", "mode": "not-bootstrapped"})
    response = pd.get("/stores")
    assert response.status_code == 500
    assert response.json() == NOT_BOOTSTRAPPED
    assert "TiKV cluster not bootstrapped, please start TiKV first" in response.text
    assert pd.get("/regions/check/miss-peer").status_code == 500
    assert pd.get("/health").status_code == 200  # PD itself is up
    assert pd.get("/cluster/status").json()["is_initialized"] is False
    metrics = httpx.get(f"{sim.pd_url}/metrics", timeout=5).text
    assert "etcd_server_is_leader 1" in metrics
    # The RaftCluster stopped: the gauges stay as last set (test_pd_members has the details).
    assert 'pd_cluster_status{type="store_up_count"} 3' in metrics
