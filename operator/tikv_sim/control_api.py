"""The simulator's own control API (JSON over loopback): inspect clusters, inject faults."""

import json
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from tikv_sim.cluster_model import Cluster
from tikv_sim.faults import FAULT_KINDS, Fault, FaultError, pick_cluster
from tikv_sim.timeline import expand

API = "/api/v1"


class Controlled(Protocol):
    """What the control API asks of the simulator it serves (the simulator builds the API: it imports this
    module, never the other way round)."""

    @property
    def clusters(self) -> Mapping[str, Cluster]: ...

    def summary(self) -> dict[str, Any]: ...

    async def apply(self, fault: Fault) -> Cluster: ...

    def cascade_log(self, cluster: str | None = None) -> dict[str, Any]: ...


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda obj: json.dumps(obj, indent=2))


def make_control_app(sim: Controlled) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def list_clusters(_request: web.Request) -> web.Response:
        return _json(sim.summary())

    def cluster_summary(key: str) -> dict[str, Any]:
        return next(c for c in sim.summary()["clusters"] if c["key"] == key)

    async def get_cluster(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            key = pick_cluster(sim.clusters, name).key
        except LookupError as error:
            return _json({"error": str(error.args[0] if error.args else error)}, status=404)
        return _json(cluster_summary(key))

    async def get_cascade(request: web.Request) -> web.Response:
        try:
            return _json(sim.cascade_log(request.match_info["name"]))
        except LookupError as error:
            return _json({"error": str(error.args[0] if error.args else error)}, status=404)

    async def post_fault(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError as error:
            return _json({"error": f"body is not JSON: {error}"}, status=400)
        try:
            fault = Fault.from_mapping(body)
            steps = expand(fault, pick_cluster(sim.clusters, fault.cluster))
            cluster = await sim.apply(fault)
        except FaultError as error:
            return _json({"error": str(error), "faults": list(FAULT_KINDS)}, status=400)
        except LookupError as error:
            return _json({"error": str(error.args[0] if error.args else error)}, status=404)
        answer: dict[str, Any] = {"applied": fault.to_mapping(), "cluster": cluster_summary(cluster.key)}
        if len(steps) > 1 or (steps and steps[0][1] is not fault):
            # A timeline: its first steps have happened, the rest run in the background.
            answer["steps"] = [{"at": at, **step.to_mapping()} for at, step in steps]
        return _json(answer)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get(f"{API}/clusters", list_clusters)
    # Before the cluster route, whose name may hold a slash: ".../clusters/<name>/cascade" is the cascade log.
    app.router.add_get(f"{API}/clusters/{{name:.+}}/cascade", get_cascade)
    app.router.add_get(f"{API}/clusters/{{name:.+}}", get_cluster)  # a key may be "<namespace>/<name>"
    app.router.add_post(f"{API}/faults", post_fault)
    return app
