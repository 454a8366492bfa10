"""What delivering tickets to Alertmanager costs the operator (docs/alertmanager.md): the CPU of one notifier round
(every second, per Alertmanager) for N clusters with T open tickets each, and of the POSTs it makes, against
an Alertmanager API v2 stand-in on 127.0.0.1 that accepts everything (the real Alertmanager's own cost is
its business; what is measured is the operator's event loop).

- baseline: a round with N clusters and no ticket (the watchdog only);
- steady: a round in which nothing is due (the common second: alerts were sent less than a resend ago);
- resend: a round in which every alert is due (once per resend interval, 1m by default), POST included.

The ratio column is against the baseline, measured in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bench.common import log, section_header, start
from bench.runner import publish
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier, Target
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_operator.tickets.core.ticket import TicketView

NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Figure:
    name: str
    seconds: float  # CPU per round
    alerts: int


def tickets_of(cluster: str, count: int) -> list[TicketView]:
    return [TicketView(name=f"{cluster}-store-down-s{i}-1", cluster=cluster, invariant="store_down", store=str(i),
                       phase="Open", severity="critical", first_seen=NOW - timedelta(minutes=5),
                       message=f"store {i} (10.0.0.{i}:20160) is Down: no heartbeat for 1800s",
                       evidence={"stateName": "Down", "address": f"10.0.0.{i}:20160", "secondsSinceHeartbeat": 1800,
                                 "source": "GET /pd/api/v1/stores"}) for i in range(1, count + 1)]


async def measure(clusters: int, tickets: int, rounds: int) -> tuple[Figure, Figure, Figure]:
    received = 0

    async def alerts(request: web.Request) -> web.Response:
        nonlocal received
        received += len(await request.json())
        return web.Response()

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/api/v2/alerts", alerts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        figures = []
        for name, count in (("baseline", 0), ("steady", tickets), ("resend", tickets)):
            notifier = Notifier(AlertPolicy(), default_urls=(url,))
            spec = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"},
                                                   "prometheus": {"url": "http://prometheus:9090"}})
            for c in range(clusters):
                views = tickets_of(f"c{c}", count)
                notifier.register("bench", f"c{c}", spec, lambda v=views: v)  # type: ignore[misc]
            target: Target = next(iter(notifier.targets.values()))
            if target.task is not None:
                target.task.cancel()  # rounds are driven here, one at a time
            await notifier.deliver(target, NOW)  # everything is new once
            cpu = 0.0
            sent_before = received
            for r in range(1, rounds + 1):
                # resend: a minute later every alert is due; steady: a second later nothing is.
                at = NOW + (timedelta(minutes=r) if name == "resend" else timedelta(seconds=r))
                started = time.process_time()
                await notifier.deliver(target, at)
                cpu += time.process_time() - started
            figures.append(Figure(name, cpu / rounds, (received - sent_before) // rounds))
            target.task = None
            await notifier.close()
        return figures[0], figures[1], figures[2]
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", default="100,1000")
    parser.add_argument("--tickets", type=int, default=3, help="open tickets per cluster")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    started = start("delivery_cost")
    rows = []
    for clusters in (int(n) for n in args.clusters.split(",")):
        log(f"delivery_cost: {clusters} clusters x {args.tickets} tickets")
        for figure in asyncio.run(measure(clusters, args.tickets, args.rounds)):
            rows.append((clusters, figure))
    baselines = {c: f.seconds for c, f in rows if f.name == "baseline"}
    lines = [
        *section_header("delivery_cost", "delivery_cost", started, argv),
        "In-process, no platform needed: the Alertmanager is an API v2 stand-in that accepts every POST, and"
        " its own parsing of the POST runs in the same process, so `resend` overstates the operator's share.", "",
        "| clusters | open tickets | round | CPU per round (ms) | alerts posted per round | ratio to baseline |",
        "|---|---|---|---|---|---|",
    ]
    for clusters, f in rows:
        ratio = f.seconds / baselines[clusters] if baselines[clusters] else float("nan")
        lines.append(f"| {clusters} | {0 if f.name == 'baseline' else clusters * args.tickets} | {f.name} | "
                     f"{f.seconds * 1000:.2f} | {f.alerts} | {ratio:.1f}x |")
    lines += ["", "A round runs every second per Alertmanager; `resend` rounds happen once per resend interval "
              "(1m), so the steady share of one core is the steady figure divided by 1000 ms."]
    return publish("delivery_cost", "\n".join(lines))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
