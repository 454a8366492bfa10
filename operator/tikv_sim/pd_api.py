"""PD's HTTP API (/pd/api/v1/...) and PD's /metrics for one cluster, with PD's failure modes."""

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tikv_sim import cascade, metrics, pd_members, pd_payloads
from tikv_sim.clock import Clock
from tikv_sim.cluster_model import REGION_CHECKS, Cluster, PdMode
from tikv_sim.pd_leader import LeaderPhase

PREFIX = "/pd/api/v1"
# unrolled/render, which PD uses, sends this content type.
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
SIMULATED_500 = "[PD:apiutil:ErrRedirect]redirect failed"
# http.Error in pkg/utils/apiutil/serverapi/middleware.go, when a follower finds no leader within 3 s.
NO_LEADER = "[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader\n"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_HANG_POLL_SECONDS = 0.05


def render_json(payload: Any, status: int = 200) -> web.Response:
    # PD renders with IndentJSON: two-space indent and a trailing newline, like Go's MarshalIndent.
    body = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    return web.Response(status=status, body=body.encode(), headers={"Content-Type": JSON_CONTENT_TYPE})


def _wrong_shape(payload: Any) -> Any:
    """Valid JSON that is not what the endpoint promises: a list for an object and the other way round."""
    if isinstance(payload, list):
        return {"code": 0, "message": "ok", "data": None}
    return [{"id": 1, "state": "Up"}]


Builder = Callable[[web.Request], Any]


class PdServer:
    def __init__(
        self, cluster: Cluster, clock: Clock, url: Callable[[], str], shuffle: random.Random | None = None
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self._url = url
        self._shuffle = shuffle  # None: /stores in id order; else a new order on every call, as PD's map gives

    def make_app(self) -> web.Application:
        app = web.Application()
        routes = {
            "/stores": self._stores,
            "/health": lambda _r: pd_payloads.health(self.cluster, self._url()),
            "/members": lambda _r: pd_payloads.members(self.cluster, self._url()),
            "/leader": lambda _r: pd_payloads.leader(self.cluster, self._url()),
            "/cluster/status": lambda _r: pd_payloads.cluster_status(self.cluster, self._bootstrapped),
            "/config/replicate": lambda _r: pd_payloads.config_replicate(self.cluster),
            "/stats/region": self._needs_cluster(
                lambda _r: pd_payloads.region_stats(self.cluster, self.clock.now_ns())
            ),
        }
        for kind in REGION_CHECKS:
            routes[f"/regions/check/{kind}"] = self._needs_cluster(self._region_check(kind))
        for path, builder in routes.items():
            app.router.add_get(PREFIX + path, self._handler(builder))
        app.router.add_get("/metrics", self._metrics)
        return app

    @property
    def _bootstrapped(self) -> bool:
        """False when not bootstrapped, and on a new leader whose RaftCluster is not running yet."""
        return pd_members.serving(self.cluster, self.clock.now_ns())

    def _needs_cluster(self, builder: Builder) -> Builder:
        """Endpoints behind PD's clusterMiddleware answer 500 until TiKV has bootstrapped the cluster."""

        def guarded(request: web.Request) -> Any:
            if not self._bootstrapped:
                raise _PdError(500, pd_payloads.NOT_BOOTSTRAPPED)
            return builder(request)

        return guarded

    def _region_check(self, kind: str) -> Builder:
        return lambda _r: pd_payloads.region_check(self.cluster, kind, self.clock.now_ns())

    def _stores(self, request: web.Request) -> Any:
        if not self._bootstrapped:
            raise _PdError(500, pd_payloads.NOT_BOOTSTRAPPED)
        try:
            states = pd_payloads.parse_state_filter(request.query.getall("state", []))
        except ValueError as error:
            raise _PdError(500, str(error)) from None  # PD answers a bad ?state with 500, not 400
        return pd_payloads.stores(self.cluster, self.clock.now_ns(), states, self._shuffle)

    def _handler(self, builder: Builder) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            await self._maybe_hang()
            cascade.settle(self.cluster, self.clock.now_ns())
            mode = self.cluster.pd.mode
            if mode is PdMode.ERROR_500:
                return render_json(SIMULATED_500, status=500)
            if self.cluster.pd.leader.phase(self.clock.now_ns()) is LeaderPhase.ELECTION:
                return web.Response(status=503, body=NO_LEADER.encode(), headers={"Content-Type": TEXT_CONTENT_TYPE})
            try:
                payload = builder(request)
            except _PdError as error:
                return render_json(error.message, status=error.status)
            if mode is PdMode.MALFORMED:
                text = render_json(payload).text or ""
                # A body cut in the middle, as when PD dies while answering.
                truncated = text[: max(1, len(text) // 2)].encode()
                return web.Response(body=truncated, headers={"Content-Type": JSON_CONTENT_TYPE})
            if mode is PdMode.WRONG_SHAPE:
                return render_json(_wrong_shape(payload))
            return render_json(payload)

        return handle

    async def _maybe_hang(self) -> None:
        """A hung PD accepts the connection and says nothing, until the fault is lifted or time runs out."""
        pd = self.cluster.pd
        if pd.mode is not PdMode.HANG:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pd.hang_seconds
        # Polling keeps the model free of event-loop objects; a hang is rare and short-lived.
        while pd.mode is PdMode.HANG and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_HANG_POLL_SECONDS)

    async def _metrics(self, _request: web.Request) -> web.Response:
        """The leader's view, kept for callers of the PD URL; Prometheus scrapes each member's own listener."""
        cascade.settle(self.cluster, self.clock.now_ns())
        text = pd_members.member_metrics(self.cluster, self.cluster.pd.leader.leader_index, self.clock.now_ns())
        return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})


class _PdError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
