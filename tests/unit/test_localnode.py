"""The node's bookkeeping (hack/localnode.py) and the relay its pods use (hack/lib/tcp_forwarder.py): two
platforms on one machine must not share a network, a socket or a cgroup; `down` must find what the kubelet
leaves behind; the relay must pass bytes both ways and say what it listens on."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def node() -> ModuleType:
    sys.path.insert(0, str(REPO / "hack"))
    try:
        return load("localnode", REPO / "hack" / "localnode.py")
    finally:
        sys.path.remove(str(REPO / "hack"))


def test_two_platform_dirs_get_different_names_sockets_and_cgroups(node: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(node, "_used_networks", list)
    one, two = node.plan(Path("/work/a/.platform-test-node")), node.plan(Path("/srv/ci/.platform-test-node"))
    assert one.containerd_address != two.containerd_address
    assert one.cgroup_root != two.cgroup_root
    assert len(one.containerd_address) < 108  # a unix socket's path limit, whatever the checkout's depth
    assert node.plan(Path("/work/a/.platform-test-node")) == one  # the same dir, the same plan


def test_the_plan_skips_ranges_the_machine_already_uses(node: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(node, "_used_networks", list)
    first = node.plan(Path("/p"))
    monkeypatch.setattr(node, "_used_networks", lambda: [ipaddress.ip_network(first.pod_cidr)])
    second = node.plan(Path("/p"))
    assert second.pod_cidr != first.pod_cidr
    pods, services = ipaddress.ip_network(second.pod_cidr), ipaddress.ip_network(second.service_cidr)
    assert ipaddress.ip_address(second.gateway) in pods
    # The API server's first Service IP is the `kubernetes` Service's: pods verify its certificate by it.
    assert second.service_ip == str(services.network_address + 1)


def test_the_cni_config_gives_pods_a_default_route_and_no_masquerade(node: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(node, "_used_networks", list)
    plan = node.plan(Path("/p"))
    bridge = node.cni_config(plan)["plugins"][0]
    assert bridge["bridge"] == plan.bridge
    assert bridge["isDefaultGateway"] is True  # without it, the Service IP is unreachable from a pod
    assert bridge["ipMasq"] is False  # nothing leaves the machine
    assert bridge["ipam"]["ranges"] == [[{"subnet": plan.pod_cidr, "gateway": plan.gateway}]]


def test_down_finds_every_pod_log_folder_the_kubelet_logged(node: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "kubelet.log").write_text(
        'I1207 kubelet.go:1916] SyncLoop (ADD, "api"): "tikv-operator-86d58f767b-cpxnm_t-ns-1(b4c58ddc-1982-'
        '4e20-ad13-398bdf3dd1ed)"\n'
        'W1207 pod_workers.go:191] Error syncing pod 0b1f5a27-fbdc-48f9-b1c3-c3a963df958b ("plain_default('
        '0b1f5a27-fbdc-48f9-b1c3-c3a963df958b)"), skipping\n')
    plan = node.NodeState("n", 1, "b", "10.244.1.0/24", "10.244.1.1", "10.96.1.0/24", "10.96.1.1", "/run/x.sock",
                          "/cg", str(tmp_path / "node"))
    assert sorted(node.pod_log_dirs(plan)) == [
        "/var/log/pods/default_plain_0b1f5a27-fbdc-48f9-b1c3-c3a963df958b",
        "/var/log/pods/t-ns-1_tikv-operator-86d58f767b-cpxnm_b4c58ddc-1982-4e20-ad13-398bdf3dd1ed",
    ]


def test_the_node_state_survives_the_platform_state_file(node: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(node, "_used_networks", list)
    plan = node.plan(Path("/p"))
    assert node.NodeState.load(json.loads(json.dumps(plan.to_json()))) == plan
    assert node.NodeState.load({}) is None
    assert plan.env()["NODE_HOST_ADDRESS"] == plan.gateway


def test_the_forwarder_relays_both_ways_and_stops_on_sigterm(tmp_path: Path) -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    target = upstream.getsockname()[1]

    def echo() -> None:
        connection, _ = upstream.accept()
        with connection:
            connection.sendall(connection.recv(1024).upper())

    threading.Thread(target=echo, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = probe.getsockname()[1]
    forwarder = subprocess.Popen([sys.executable, str(REPO / "hack" / "lib" / "tcp_forwarder.py"),
                                  f"127.0.0.1:{listen}=127.0.0.1:{target}"], stdout=subprocess.PIPE, text=True)
    try:
        assert forwarder.stdout is not None
        assert forwarder.stdout.readline().strip() == f"forwarding 127.0.0.1:{listen} -> 127.0.0.1:{target}"
        deadline = time.monotonic() + 10
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", listen), timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the forwarder never listened"
                time.sleep(0.05)
        with client:
            client.sendall(b"ping")
            assert client.recv(1024) == b"PING"
    finally:
        forwarder.terminate()
        assert forwarder.wait(10) == 0
        upstream.close()


def test_the_forwarder_refuses_a_malformed_pair() -> None:
    done = subprocess.run([sys.executable, str(REPO / "hack" / "lib" / "tcp_forwarder.py"), "127.0.0.1:80"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "expected LISTEN_HOST:PORT=TARGET_HOST:PORT" in done.stderr
