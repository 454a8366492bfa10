"""A webhook receiver for the platform's Alertmanager: every POST body becomes one line of a log file.

    python3 hack/lib/webhook_sink.py --port PORT --log FILE

Tests read FILE to see what Alertmanager delivered (webhook payload version 4: one JSON object per
notification, `alerts` inside). GET / answers 200 "ok" so `hack/platform` can tell it is ready.
Standard library only, like hack/localplatform.py which starts it. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

MAX_BODY = 16 * 1024 * 1024  # Alertmanager truncates large groups itself; this only bounds a stray client


class Sink:
    def __init__(self, path: str) -> None:
        # O_APPEND: each os.write lands at the end even if someone else appends too (a second sink, a test).
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def append(self, line: bytes) -> None:
        # One write call per whole line, so a concurrent reader never sees two notifications interleaved;
        # the lock keeps the rare short write of one request from being split by another's.
        with self.lock:
            view = memoryview(line)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]


def handler_for(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200, b"ok")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self._answer(400, b"a JSON body is required")
                return
            body = self.rfile.read(length)
            try:
                payload = json.loads(body)
            except ValueError:
                self._answer(400, b"not JSON")
                return
            # Re-serialised compactly: the body may be pretty-printed, and the log holds one line each.
            sink.append(json.dumps(payload, separators=(",", ":")).encode() + b"\n")
            self._answer(200, b"ok")

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the log file is the record; readiness probes would only add noise

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a client stuck mid-request must not keep SIGTERM from ending the process
    request_queue_size = 64  # the default 5 refuses connections when several Alertmanagers flush at once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True, help="the file every POST body is appended to")
    args = parser.parse_args(argv)

    server = Server(("127.0.0.1", args.port), handler_for(Sink(args.log)))

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # serve_forever runs in this thread, so server.shutdown() here would wait on itself forever.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"webhook sink on http://127.0.0.1:{args.port}/, logging to {args.log}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
