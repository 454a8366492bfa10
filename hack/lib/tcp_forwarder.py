"""TCP forwarding for the local node's pods: what kube-proxy and a host's routable addresses give pods on a
real cluster, for a platform whose control plane listens on 127.0.0.1 only.

    python3 hack/lib/tcp_forwarder.py LISTEN_HOST:PORT=TARGET_HOST:PORT [...]

Each pair listens on LISTEN_HOST:PORT (an address of the node's bridge: the `kubernetes` Service's cluster
IP, or the pods' gateway) and relays every connection byte for byte to TARGET_HOST:PORT (127.0.0.1). TLS
passes through untouched: a pod verifies the API server's own certificate, which names the Service IP.
Standard library only, like hack/localplatform.py which starts it. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

CONNECT_TIMEOUT_S = 5.0
CHUNK = 64 * 1024


def parse_pair(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, _, target = text.partition("=")
    try:
        listen_host, listen_port = listen.rsplit(":", 1)
        target_host, target_port = target.rsplit(":", 1)
        return (listen_host, int(listen_port)), (target_host, int(target_port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LISTEN_HOST:PORT=TARGET_HOST:PORT, got {text!r}") from None


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


def relay_to(target: tuple[str, int]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(*target), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            client_writer.close()
            return
        try:
            await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()

    return relay


async def serve(pairs: list[tuple[tuple[str, int], tuple[str, int]]]) -> None:
    servers = [await asyncio.start_server(relay_to(target), *listen, reuse_address=True) for listen, target in pairs]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for (host, port), target in pairs:
        print(f"forwarding {host}:{port} -> {target[0]}:{target[1]}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", type=parse_pair, metavar="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
