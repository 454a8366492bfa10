"""The tidb-operator test support works: its CRDs install and take TidbClusters with their status in one
`kubectl create`, and in-cluster names (`<tc>-pd.<ns>`, `<monitor>-prometheus.<ns>`) reach the simulator's
PD and the platform's Prometheus through /etc/hosts and a TCP forwarder, in this process and in others."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from harness.kube import Cli
from harness.prometheus import Prometheus

from tests.support.tidb_operator import (
    HOSTS_FILE,
    HOSTS_MARK,
    default_stores,
    hosts_entries,
    install_crds,
    loopback_address,
    pd_host,
    pd_url,
    prometheus_host,
    prometheus_url,
    tcp_forward,
    tidb_cluster_id,
    tidbcluster_manifest,
    tidbmonitor_manifest,
)
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig


def _get_in_subprocess(url: str) -> int:
    """The status code another Python process gets for `url` (it resolves the name on its own)."""
    code = "import sys, httpx; print(httpx.get(sys.argv[1], timeout=5, trust_env=False).status_code)"
    result = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=30,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


@pytest.mark.usefixtures("tidb_crds")
def test_a_tidbcluster_is_created_with_its_status_in_one_kubectl_create(kubectl: Cli, namespace: str) -> None:
    stores = default_stores("basic", namespace)
    stores["2"]["state"] = "Disconnected"
    scraped = [{"name": "basic"}, {"name": "secure", "namespace": namespace}]
    objects = [
        tidbcluster_manifest("basic", namespace=namespace, stores=stores),
        tidbcluster_manifest("secure", namespace=namespace, tls=True, cluster_domain="cluster.local", paused=True),
        tidbcluster_manifest("fresh", namespace=namespace, bootstrapped=False),
        tidbcluster_manifest("joined", namespace=namespace, join={"name": "basic"}, annotations={"a": "b"}),
        tidbcluster_manifest("no-tikv", namespace=namespace, tikv=False),
        tidbmonitor_manifest("basic", scraped, namespace=namespace),
    ]
    kubectl("create", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))

    got = {item["metadata"]["name"]: item for item in kubectl.json("get", "tc")["items"]}
    assert sorted(got) == ["basic", "fresh", "joined", "no-tikv", "secure"]
    assert got["basic"]["status"]["tikv"]["stores"] == stores  # kept as written: no status subresource
    assert got["basic"]["status"]["tikv"]["stores"]["1"]["podName"] == "basic-tikv-0"
    assert got["basic"]["status"]["clusterID"] == tidb_cluster_id("basic", namespace)
    assert got["joined"]["status"]["clusterID"] == got["basic"]["status"]["clusterID"]
    assert got["joined"]["spec"]["cluster"] == {"name": "basic", "namespace": namespace}
    assert "pd" not in got["joined"]["spec"]
    assert "bootStrapped" not in got["fresh"]["status"]["tikv"]
    assert "stores" not in got["fresh"]["status"]["tikv"]
    assert got["secure"]["spec"]["tlsCluster"] == {"enabled": True}
    assert got["secure"]["spec"]["paused"] is True
    assert "tikv" not in got["no-tikv"]["spec"]
    for name, item in got.items():  # nothing pruned, spec or status
        wanted = next(o for o in objects if o["kind"] == "TidbCluster" and o["metadata"]["name"] == name)
        assert item["spec"] == wanted["spec"], name
        assert item["status"] == wanted["status"], name

    table = kubectl("get", "tc").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "READY"]
    assert any(line.split()[:2] == ["basic", "True"] for line in table[1:]), table
    assert any(line.split()[:2] == ["fresh", "False"] for line in table[1:]), table
    assert kubectl("get", "tm", "-o", "name").stdout.split() == ["tidbmonitor.pingcap.com/basic"]
    monitor = kubectl.json("get", "tidbmonitor", "basic")
    assert monitor["spec"]["clusters"] == scraped


@pytest.mark.usefixtures("tidb_crds")
def test_a_tidbmonitor_needs_what_upstream_requires(kubectl: Cli) -> None:
    manifest = tidbmonitor_manifest("broken", [{"name": "basic"}])
    del manifest["spec"]["prometheus"]
    result = kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "prometheus" in result.stderr


def test_installing_again_changes_nothing(kubectl_admin: Cli, tidb_crds: None) -> None:
    before = kubectl_admin.json("get", "crd", "tidbclusters.pingcap.com")["metadata"]["resourceVersion"]
    install_crds(kubectl_admin)
    after = kubectl_admin.json("get", "crd", "tidbclusters.pingcap.com")["metadata"]["resourceVersion"]
    assert after == before


def test_hosts_entries_resolve_everywhere_and_leave_the_file_as_found() -> None:
    original = HOSTS_FILE.read_bytes()
    name = f"basic-pd.t-{secrets.token_hex(4)}"
    ip = loopback_address()
    seen: dict[str, object] = {}

    def use_then_fail() -> None:
        with hosts_entries({name: ip}, owner="test_hosts_entries") as lines:
            seen["lines"] = lines
            seen["file"] = [line for line in HOSTS_FILE.read_text().splitlines() if name in line]
            seen["here"] = socket.getaddrinfo(name, 2379)[0][4][:2]
            resolve = f"import socket; print(socket.getaddrinfo({name!r}, 2379)[0][4][0])"
            other = subprocess.run([sys.executable, "-c", resolve], capture_output=True, text=True, timeout=30,
                                   check=True)  # fmt: skip
            seen["subprocess"] = other.stdout.strip()
            raise KeyError("an exception in the block")

    with pytest.raises(KeyError):
        use_then_fail()
    assert seen["here"] == (ip, 2379)
    assert seen["subprocess"] == ip
    assert seen["lines"] == seen["file"]
    assert HOSTS_MARK in str(seen["lines"])
    assert HOSTS_FILE.read_bytes() == original
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(name, 2379)


def test_hosts_entries_leave_lines_written_meanwhile(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.1.1.1 kept")  # no newline at the end
    with hosts_entries({"a.example": "127.0.0.9", "b.example": "127.0.0.10"}, path=hosts, verify=False):
        with hosts.open("a") as other:
            other.write("10.2.2.2 theirs\n")
        text = hosts.read_text()
        assert text.startswith("127.0.0.1 localhost\n10.1.1.1 kept\n127.0.0.9 a.example # tikvops-tests pid=")
    assert hosts.read_text() == "127.0.0.1 localhost\n10.1.1.1 kept\n10.2.2.2 theirs\n"
    with hosts_entries({"c.example": "127.0.0.11"}, path=hosts, verify=False):
        pass
    assert hosts.read_text() == "127.0.0.1 localhost\n10.1.1.1 kept\n10.2.2.2 theirs\n"
    with pytest.raises(ValueError, match="host name"), hosts_entries({"bad name": "127.0.0.1"}, path=hosts):
        pass
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"), \
            hosts_entries({"ok.example": "not-an-ip"}, path=hosts):  # fmt: skip
        pass
    assert hosts.read_text() == "127.0.0.1 localhost\n10.1.1.1 kept\n10.2.2.2 theirs\n"


def test_a_monitors_prometheus_name_reaches_the_platform_prometheus(prometheus: Prometheus) -> None:
    target = urlsplit(prometheus.url)
    assert target.hostname is not None
    assert target.port is not None
    namespace = f"t-{secrets.token_hex(4)}"
    url = prometheus_url("basic", namespace)
    ip = loopback_address(9090)
    with tcp_forward(ip, 9090, target.hostname, target.port) as forward, \
            hosts_entries({prometheus_host("basic", namespace): ip}, owner="prometheus-forward"):  # fmt: skip
        assert url == f"http://basic-prometheus.{namespace}:9090"
        with httpx.Client(trust_env=False, timeout=5) as client:
            ready = client.get(f"{url}/-/ready")
            assert ready.status_code == 200, ready.text
            assert client.get(f"{url}/api/v1/query", params={"query": "1+1"}).json()["data"]["result"][1] == "2"
            assert _get_in_subprocess(f"{url}/-/ready") == 200
            assert forward.connections >= 2
            idle = socket.create_connection((ip, 9090), timeout=5)  # left open when the forwarder stops
    # Gone: the listener, every connection and the name.
    with idle, contextlib.suppress(ConnectionResetError):  # closed: EOF or a reset
        assert idle.recv(1) == b""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{ip}:9090/-/ready", timeout=2)
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(prometheus_host("basic", namespace), 9090)


def test_a_tidbclusters_pd_name_reaches_the_simulator_on_2379() -> None:
    namespace = f"t-{secrets.token_hex(4)}"
    ip = loopback_address(2379)
    config = SimConfig(stores=3, namespace=namespace, instance_label=InstanceLabel.POD_NAME, pd_host=ip,
                       pd_port=2379, control_port=None, grpc_series="lean")  # fmt: skip
    with SimulatorThread(config) as sim, hosts_entries({pd_host("basic", namespace): ip}):
        url = pd_url("basic", namespace)
        assert sim.pd_url == f"http://{ip}:2379"
        body = httpx.get(f"{url}/pd/api/v1/stores", timeout=5, trust_env=False).json()
        assert body["count"] == 3
        assert _get_in_subprocess(f"{url}/pd/api/v1/health") == 200
        status = sim.tidb_tikv_status()
        manifest = tidbcluster_manifest("basic", namespace=namespace, stores=status["stores"])
    assert manifest["status"]["clusterID"] == str(sim.simulator.clusters["basic"].identity.cluster_id)
    assert {s["id"]: s["podName"] for s in manifest["status"]["tikv"]["stores"].values()} == {
        "1": "basic-tikv-0", "2": "basic-tikv-1", "3": "basic-tikv-2",
    }  # fmt: skip
