"""The PD client against real servers on 127.0.0.1: recorded PD answers, the simulator's PD and its
failure modes, a closed port, and PD behind mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.pd_bodies import REFERENCE_STORES
from tests.unit.adapters.local_servers import Pki, closed_port, serving
from tikv_operator.checks import pd_client
from tikv_operator.checks.core.observation import PDObservation
from tikv_operator.checks.pd_client import client_ssl_context, read_stores
from tikv_operator.kube.credentials import TLSClientCredentials
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig

GIB = 1024**3
STORES = "/pd/api/v1/stores"


def _answer(body: str | bytes, status: int = 200) -> web.Application:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(STORES, handle)
    return app


def _read(app: web.Application, timeout_s: float = 5.0) -> PDObservation:
    async def scenario() -> PDObservation:
        async with serving(app) as url:
            return await read_stores(url, timeout_s)

    return asyncio.run(scenario())


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimConfig(stores=3, control_port=None)) as running:
        yield running


def test_reference_answer_gives_stores_with_exact_states_and_sizes() -> None:
    observation = _read(_answer(json.dumps(REFERENCE_STORES)))

    assert observation.reachable, observation.error
    assert observation.error == ""
    up, down = observation.stores
    assert (up.id, up.state_name, up.up) == ("1", "Up", True)
    assert up.status_address == "basic-tikv-0.basic-tikv-peer.tidb.svc:20180"
    assert up.capacity_bytes == round(96.73 * GIB)
    assert up.available_bytes == round(51.41 * GIB)
    assert (down.id, down.state_name, down.up) == ("4", "Down", False)
    assert (down.capacity_bytes, down.available_bytes) == (0, 0)


def test_simulator_pd_lists_every_store_up(sim: SimulatorThread) -> None:
    observation = asyncio.run(read_stores(sim.pd_url, 5.0))

    assert observation.reachable, observation.error
    stores = sorted(observation.stores, key=lambda s: s.id)  # PD lists them in a new order on every call
    assert [s.id for s in stores] == ["1", "2", "3"]
    summary = sim.summary()["clusters"][0]["stores"]
    assert [s.status_address for s in stores] == [s["status_address"] for s in summary]
    assert all(s.state_name == "Up" for s in stores)
    assert stores[0].capacity_bytes == 100 * GIB


def test_offline_store_is_reported_with_its_state(sim: SimulatorThread) -> None:
    sim.fault({"fault": "store-state", "store": 2, "state": "Offline"})
    observation = asyncio.run(read_stores(sim.pd_url + "/", 5.0))  # a trailing slash in the spec is fine

    assert {s.id: s.state_name for s in observation.stores} == {"1": "Up", "2": "Offline", "3": "Up"}


def test_not_bootstrapped_shows_status_and_pd_message(sim: SimulatorThread) -> None:
    sim.fault({"fault": "pd", "mode": "not-bootstrapped"})
    observation = asyncio.run(read_stores(sim.pd_url, 5.0))

    assert not observation.reachable
    assert observation.stores == ()
    assert observation.error == (
        "GET /pd/api/v1/stores: HTTP 500 Internal Server Error: "
        "[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first"
    )


def test_long_error_body_is_cut_to_one_short_line() -> None:
    body = json.dumps("boom\n" + "x" * 1000)
    observation = _read(_answer(body, status=503))

    assert not observation.reachable
    assert observation.error.startswith("GET /pd/api/v1/stores: HTTP 503 Service Unavailable: boom xxx")
    assert observation.error.endswith("…")
    assert len(observation.error) < 280
    assert "\n" not in observation.error


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("500", "GET /pd/api/v1/stores: HTTP 500 Internal Server Error: [PD:apiutil:ErrRedirect]redirect failed"),
        ("malformed", "GET /pd/api/v1/stores: /stores is not JSON: "),
        ("wrong-shape", "GET /pd/api/v1/stores: /stores is not an object with a list of stores"),
        ("unreachable", "GET /pd/api/v1/stores: cannot connect: Connection refused"),
    ],
)
def test_pd_failure_modes_give_unreachable_with_a_reason(sim: SimulatorThread, mode: str, error: str) -> None:
    sim.fault({"fault": "pd", "mode": mode})
    observation = asyncio.run(read_stores(sim.pd_url, 5.0))

    assert not observation.reachable
    assert observation.stores == ()
    assert observation.error.startswith(error), observation.error
    assert observation.url == sim.pd_url

    sim.fault({"fault": "pd", "mode": "ok"})
    assert asyncio.run(read_stores(sim.pd_url, 5.0)).reachable


def test_hung_pd_times_out_at_the_spec_timeout(sim: SimulatorThread) -> None:
    sim.fault({"fault": "pd", "mode": "hang", "hang_seconds": 10})
    started = time.monotonic()
    observation = asyncio.run(read_stores(sim.pd_url, 0.3))
    elapsed = time.monotonic() - started

    assert observation.error == "GET /pd/api/v1/stores: no answer within 0.3s"
    assert 0.25 < elapsed < 2.0


def test_trickling_answer_is_bounded_by_the_total_timeout() -> None:
    """Each read arrives before httpx's per-read timeout: only the whole-request deadline stops it."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" ")
            await asyncio.sleep(0.05)
        return response

    app = web.Application()
    app.router.add_get(STORES, trickle)
    started = time.monotonic()
    observation = _read(app, timeout_s=0.5)

    assert observation.error == "GET /pd/api/v1/stores: no answer within 0.5s"
    assert time.monotonic() - started < 2.0


def test_closed_port_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    observation = asyncio.run(read_stores(url, 2.0))

    assert observation == PDObservation(
        url=url, reachable=False, error="GET /pd/api/v1/stores: cannot connect: Connection refused"
    )


def test_stores_with_a_bad_id_are_a_wrong_shape() -> None:
    observation = _read(_answer(json.dumps({"stores": [{"store": {"address": "a:1"}}]})))

    assert not observation.reachable
    assert observation.error == (
        "GET /pd/api/v1/stores: /stores has an unexpected shape (stores.0.store.id: Field required)"
    )


# --- mutual TLS -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_ssl_cache() -> Iterator[None]:
    client_ssl_context.cache_clear()
    yield
    client_ssl_context.cache_clear()


def _credentials(pki: Pki, *, ca: str = "ca.crt", key: str = "client.key") -> TLSClientCredentials:
    return TLSClientCredentials(secret="tidb/basic-cluster-client-secret", ca=pki.read(ca),
                                cert=pki.read("client.crt"), key=pki.read(key))


def _read_tls(pki: Pki, tls: TLSClientCredentials | None) -> PDObservation:
    async def scenario() -> PDObservation:
        async with serving(_answer(json.dumps(REFERENCE_STORES)), tls=pki.server_context()) as url:
            return await read_stores(url, 5.0, tls)

    return asyncio.run(scenario())


def _assert_no_key_material(text: str, pki: Pki) -> None:
    key_lines = [line for line in pki.read("client.key").decode().splitlines() if "-----" not in line]
    assert not any(line in text for line in key_lines)
    assert "PRIVATE KEY" not in text


def test_https_pd_with_the_client_certificate_answers(pki: Pki) -> None:
    observation = _read_tls(pki, _credentials(pki))

    assert observation.reachable, observation.error
    assert [s.id for s in observation.stores] == ["1", "4"]


def test_https_pd_without_credentials_is_not_trusted(pki: Pki) -> None:
    observation = _read_tls(pki, None)  # the system CAs do not know our CA either

    assert not observation.reachable
    assert observation.error.startswith("GET /pd/api/v1/stores: cannot connect: TLS: "), observation.error
    assert "CERTIFICATE_VERIFY_FAILED" in observation.error


def test_https_pd_signed_by_another_ca_is_not_trusted(pki: Pki) -> None:
    observation = _read_tls(pki, _credentials(pki, ca="other-ca.crt"))

    assert not observation.reachable
    assert "CERTIFICATE_VERIFY_FAILED" in observation.error
    _assert_no_key_material(observation.error, pki)


def test_encrypted_key_is_refused_without_prompting(pki: Pki) -> None:
    observation = _read_tls(pki, _credentials(pki, key="client-encrypted.key"))

    assert observation.error == (
        "tls.crt and tls.key of Secret tidb/basic-cluster-client-secret "
        "are not a matching unencrypted PEM key pair"
    )


def test_garbage_ca_is_named_without_its_content(pki: Pki) -> None:
    credentials = TLSClientCredentials(secret="tidb/s", ca=b"not a certificate", cert=b"-", key=b"SECRET-KEY")
    observation = asyncio.run(read_stores("https://127.0.0.1:1", 1.0, credentials))

    assert observation.error == "ca.crt of Secret tidb/s is not a PEM or DER certificate"


def test_key_pair_files_are_private_and_deleted(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Recording(ssl.SSLContext):
        def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
            seen["dir_mode"] = stat.S_IMODE(Path(certfile).parent.stat().st_mode)
            seen["file_modes"] = {stat.S_IMODE(Path(p).stat().st_mode) for p in (certfile, keyfile)}
            seen["dir"] = Path(certfile).parent
            super().load_cert_chain(certfile, keyfile, password)

    def recording_context(cadata: Any = None) -> ssl.SSLContext:
        context = Recording(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=cadata)
        return context

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(pd_client.ssl, "create_default_context", recording_context)
    client_ssl_context(_credentials(pki))

    assert seen["dir_mode"] == 0o700
    assert seen["file_modes"] == {0o600}
    assert seen["dir"].parent == tmp_path
    assert list(tmp_path.iterdir()) == []  # gone as soon as the context is built


def test_client_context_is_built_once_per_secret_content(pki: Pki) -> None:
    credentials = _credentials(pki)

    assert client_ssl_context(credentials) is client_ssl_context(_credentials(pki))
    assert client_ssl_context.cache_info().misses == 1


def _pd_with_tombstones(listed: list[int], tombstones: list[int], tombstone_status: int = 200
                        ) -> tuple[web.Application, list[str]]:
    """A PD whose default list holds `listed` (Up) and whose ?state=2 list holds `tombstones`."""
    asked: list[str] = []

    def entry(store_id: int, state: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": store_id, "address": f"tikv-{store_id}:20160", "state_name": state}
        if state == "Tombstone":
            meta["state"] = 2
        return {"store": meta, "status": {}}

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.query_string)
        if request.query.getall("state", []) == ["2"]:
            body = {"count": len(tombstones), "stores": [entry(i, "Tombstone") for i in tombstones]}
            return web.json_response(body, status=tombstone_status)
        return web.json_response({"count": len(listed), "stores": [entry(i, "Up") for i in listed]})

    app = web.Application()
    app.router.add_get(STORES, handle)
    return app, asked


def _read_confirming(app: web.Application, confirm: frozenset[str]) -> PDObservation:
    async def scenario() -> PDObservation:
        async with serving(app) as url:
            return await read_stores(url, 5.0, confirm=confirm)

    return asyncio.run(scenario())


def test_a_ticketed_store_missing_from_the_list_is_confirmed_as_tombstone_with_one_more_request() -> None:
    app, asked = _pd_with_tombstones(listed=[1, 2], tombstones=[3, 9])
    observation = _read_confirming(app, frozenset({"1", "3", "4"}))

    assert asked == ["", "state=2"]
    assert observation.reachable
    assert [s.id for s in observation.stores] == ["1", "2"]
    assert [(s.id, s.state_name) for s in observation.tombstones] == [("3", "Tombstone")]  # 9 has no ticket
    assert observation.unlisted == ("4",)  # neither listed nor a Tombstone: PD lost track of it


def test_no_extra_request_while_every_ticketed_store_is_listed() -> None:
    app, asked = _pd_with_tombstones(listed=[1, 2], tombstones=[3])
    observation = _read_confirming(app, frozenset({"1", "2"}))

    assert asked == [""]
    assert (observation.tombstones, observation.unlisted) == ((), ())


def test_a_failing_tombstone_request_leaves_the_missing_store_unknown_and_pd_reachable() -> None:
    app, asked = _pd_with_tombstones(listed=[1], tombstones=[3], tombstone_status=500)
    observation = _read_confirming(app, frozenset({"3"}))

    assert asked == ["", "state=2"]
    assert observation.reachable
    assert (observation.tombstones, observation.unlisted) == ((), ())


def _endless_stores(total_bytes: int, gzip_encoded: bool = False) -> web.Application:
    """A PD whose /stores answer goes on and on (bounded, so the test ends whatever the client does)."""
    entry = json.dumps(REFERENCE_STORES["stores"][0]).encode() + b","

    async def handle(request: web.Request) -> web.StreamResponse:
        if gzip_encoded:  # a small compressed answer that unpacks to `total_bytes`

            body = gzip.compress(b'{"stores": [' + b" " * total_bytes + b"]}")
            return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"count": 1, "stores": [')
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < total_bytes:
                await response.write(entry * 64)
                sent += len(entry) * 64
        return response

    app = web.Application()
    app.router.add_get(STORES, handle)
    return app


@pytest.mark.parametrize("gzip_encoded", [False, True], ids=["streamed", "gzip-bomb"])
def test_an_answer_beyond_the_cap_is_not_read_and_says_too_large(monkeypatch: pytest.MonkeyPatch,
                                                                 gzip_encoded: bool) -> None:
    monkeypatch.setattr(pd_client, "PD_ANSWER_MAX_BYTES", 1024 * 1024, raising=False)

    observation = _read(_endless_stores(64 * 1024 * 1024, gzip_encoded), timeout_s=20.0)

    assert not observation.reachable
    assert observation.error == "GET /pd/api/v1/stores: answer too large: it exceeded 1 MiB"


def test_a_big_answer_is_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = REFERENCE_STORES["stores"][0]
    stores = [{**entry, "store": {**entry["store"], "id": n}} for n in range(1, 2001)]
    body = json.dumps({"count": len(stores), "stores": stores})
    assert len(body) > pd_client.PARSE_INLINE_MAX_BYTES
    threads: list[str] = []
    observed = pd_client._observed

    def spy(answer: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return observed(answer)

    monkeypatch.setattr(pd_client, "_observed", spy)
    observation = _read(_answer(body))

    assert observation.reachable, observation.error
    assert len(observation.stores) == 2000
    assert threads
    assert threads[0] != threading.main_thread().name
