"""The simulator's own control API (JSON over loopback): inspect clusters, inject faults."""

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tikv_sim.faults import FAULT_KINDS, Fault, FaultError

if TYPE_CHECKING:
    from tikv_sim.simulator import Simulator

API = "/api/v1"


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda obj: json.dumps(obj, indent=2))


def make_control_app(sim: "Simulator") -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def list_clusters(_request: web.Request) -> web.Response:
        return _json(sim.summary())

    async def get_cluster(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for cluster in sim.summary()["clusters"]:
            if cluster["name"] == name:
                return _json(cluster)
        return _json({"error": f"no cluster {name!r}"}, status=404)

    async def post_fault(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError as error:
            return _json({"error": f"body is not JSON: {error}"}, status=400)
        try:
            fault = Fault.from_mapping(body)
            cluster = await sim.apply(fault)
        except FaultError as error:
            return _json({"error": str(error), "faults": list(FAULT_KINDS)}, status=400)
        except LookupError as error:
            return _json({"error": str(error.args[0] if error.args else error)}, status=404)
        summary = next(c for c in sim.summary()["clusters"] if c["name"] == cluster.name)
        return _json({"applied": fault.to_mapping(), "cluster": summary})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get(f"{API}/clusters", list_clusters)
    app.router.add_get(f"{API}/clusters/{{name}}", get_cluster)
    app.router.add_post(f"{API}/faults", post_fault)
    return app
