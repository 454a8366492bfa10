"""A Prometheus (or VictoriaMetrics) of another release beside the platform's: same scrape configuration, same
file_sd folder (so it scrapes every target the platform's does), its own port and data folder. What the stack
conformance tests and `bench/detection_latency.py --stack` query instead of the platform's."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

from harness.prometheus import Prometheus

REPO = Path(__file__).resolve().parents[1]
# Every release the platform can run (hack/stacks.py's names): kept here too because hack/ is no package.
PROMETHEUS_RELEASES = ("2.42", "2.53", "3.5", "victoriametrics")
ALERTMANAGER_RELEASES = ("0.25", "0.28", "0.33")
# How much later than Prometheus the platform's release shows a fault: VictoriaMetrics answers 30 s behind
# (-search.latencyOffset, rule 25). Waits for a Prometheus-read outcome add it; hack/test and `make test` set the
# variable for the platform and pytest alike.
DATA_DELAY_S = 30.0 if os.environ.get("TIKV_PROMETHEUS_RELEASE") == "victoriametrics" else 0.0


def localplatform() -> ModuleType:
    """hack/localplatform.py (which puts hack/ on sys.path, so `stacks` imports after it), loaded once."""
    name = "tikv_localplatform"  # one copy for the harness and tests alike
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "hack" / "localplatform.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def stacks() -> ModuleType:
    localplatform()
    import stacks as module  # hack/stacks.py, on sys.path once localplatform is loaded

    return module


class ExtraPrometheus:
    """Start with `with ExtraPrometheus(...) as extra:`; `extra.prometheus` is what tests query."""

    def __init__(self, release: str, file_sd_dir: Path, directory: Path) -> None:
        self.lp = localplatform()
        self.stacks = stacks()
        self.release = self.stacks.prometheus_release(release)
        self.file_sd_dir = file_sd_dir
        self.directory = directory
        self.port = self.lp.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(url=self.url, file_sd_dir=self.file_sd_dir)

    @property
    def log(self) -> Path:
        return self.directory / "logs" / "prometheus.log"

    def __enter__(self) -> ExtraPrometheus:
        with self.lp.cache_lock():
            self.stacks.provision(self.lp.cache_dir(), [self.release])
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(self.stacks.scrape_config(self.release, str(self.file_sd_dir)))
        argv = self.stacks.prometheus_argv(self.lp.cache_dir(), self.release, config, self.directory / "data",
                                           self.port)
        self.proc = self.lp.spawn("prometheus", argv, self.port, self.directory / "logs")
        ready = f"{self.url}{self.stacks.ready_path(self.release)}"
        try:
            self.lp.wait_ready(self.proc, lambda: self.lp.http_ok(ready), f"GET {ready}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None:
            self.lp.stop(self.lp.State("", "", "", "", "", procs=[self.proc]))
            self.lp._reap(self.proc.pid)
            self.proc = None


class PathPrefixProxy:
    """VictoriaMetrics cluster's query path, emulated: GET {url}/select/0/prometheus/api/v1/... is answered by
    the single node's /api/v1/... (anything outside the prefix is a 404, as vmselect's). `with` starts and
    stops it; `url` is the prefixed URL a spec.prometheus.url names."""

    PREFIX = "/select/0/prometheus"

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.PREFIX}"

    def __enter__(self) -> PathPrefixProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith(proxy.PREFIX + "/"):
                    self.send_error(404, "not under the tenant's prefix")
                    return
                try:
                    with urllib.request.urlopen(proxy.target + self.path[len(proxy.PREFIX):],  # noqa: S310 (loopback)
                                                timeout=10) as answer:
                        status, body, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
                except urllib.error.HTTPError as error:
                    status, body, kind = error.code, error.read(), error.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a query a second per check would drown the test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
