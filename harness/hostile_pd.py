"""PD servers whose answers the operator must not trust: one that answers /stores without end (far past the
operator's answer cap), one whose stores carry NaN and Infinity where PD writes numbers. Used by the soak's
hostile tenants (bench/soak); plain threads and the standard library's HTTP server, on 127.0.0.1 only."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MIB = 1024 * 1024
STORES_PATH = "/pd/api/v1/stores"
MODES = ("huge", "nan")

# One store as PD's /stores lists it (the shape of reference/tikv.md's example).
STORE: dict[str, Any] = {
    "store": {"id": 1, "address": "hostile-tikv-0:20160", "status_address": "hostile-tikv-0:20180",
              "version": "8.5.0", "start_timestamp": 1764000000, "last_heartbeat": 1764030000123456789,
              "state_name": "Up"},
    "status": {"capacity": "96.73GiB", "available": "51.41GiB", "used_size": "292.5MiB", "leader_count": 16,
               "leader_weight": 1, "region_count": 56, "region_weight": 1, "slow_score": 1,
               "start_ts": "2026-11-24T16:00:00Z", "uptime": "8h20m0.12s"}}


def nan_stores(stores: int = 3) -> bytes:
    """A /stores answer whose numbers are NaN and Infinity (JSON that Python's reader takes, PD never writes)."""
    listed = []
    for number in range(1, stores + 1):
        store = json.loads(json.dumps(STORE))
        store["store"].update({"id": number, "address": f"hostile-tikv-{number}:20160",
                               "status_address": f"hostile-tikv-{number}:20180"})
        store["status"].update({"slow_score": float("nan"), "capacity": float("inf"), "available": float("nan"),
                                "leader_count": float("inf"), "region_count": float("-inf")})
        listed.append(store)
    return json.dumps({"count": stores, "stores": listed}).encode()


@dataclass
class HostilePD:
    """A PD on 127.0.0.1 answering every /stores request per `mode`: `huge` streams `huge_bytes` of
    valid-looking stores (as fast as they are read), `nan` answers nan_stores(). Anything else: 404."""

    mode: str
    huge_bytes: int = 128 * MIB
    requests: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostilePD:
        if self.mode not in MODES:
            raise ValueError(f"unknown hostile PD mode {self.mode!r} (one of {', '.join(MODES)})")
        owner = self
        chunk = (json.dumps(STORE) + ",").encode() * 256
        body = nan_stores()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith(STORES_PATH):
                    self.send_error(404)
                    return
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if owner.mode == "nan":
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.end_headers()  # no length: the answer ends when the connection does
                sent = 0
                try:
                    self.wfile.write(b'{"count": 100000, "stores": [')
                    while not owner._stop.is_set() and sent < owner.huge_bytes:
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except OSError:
                    pass  # the reader stopped at its cap: that is the point
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"hostile-pd-{self.mode}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
