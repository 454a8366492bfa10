"""The original tool's way of checking a cluster, kept only as the benchmarks' baseline: PD's store list,
then FIVE Prometheus queries per store (p99 latency, capacity, available, up, region count), each
selecting one store with `instance="<status address>"`, issued one after another through
prometheus-api-client. It reuses one PrometheusConnect (one HTTP session, kept-alive connections) for
every check, which is the kindest reading of the original daemon."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from prometheus_api_client import PrometheusConnect

LATENCY_LIMIT_S = 0.1
DISK_LIMIT = 0.7


def _selector(matchers: Mapping[str, str], instance: str, extra: str = "") -> str:
    parts = [f'instance="{instance}"', *([extra] if extra else [])]
    parts += [f'{k}="{v}"' for k, v in sorted(matchers.items())]
    return "{" + ",".join(parts) + "}"


def store_queries(matchers: Mapping[str, str], instance: str) -> dict[str, str]:
    """The five per-store queries of the original tool."""
    not_gc, capacity, available, region = 'type!="kv_gc"', 'type="capacity"', 'type="available"', 'type="region"'
    return {
        "p99": "histogram_quantile(0.99, sum by (le) (rate(tikv_grpc_msg_duration_seconds_bucket"
               f"{_selector(matchers, instance, not_gc)}[1m])))",
        "capacity": f"tikv_store_size_bytes{_selector(matchers, instance, capacity)}",
        "available": f"tikv_store_size_bytes{_selector(matchers, instance, available)}",
        "up": f"up{_selector(matchers, instance)}",
        "regions": f"tikv_raftstore_region_count{_selector(matchers, instance, region)}",
    }


@dataclass(frozen=True)
class BaselineResult:
    stores: int
    violated: int
    ok: int
    unknown: int


def _first(result: list[dict[str, object]]) -> float | None:
    if not result:
        return None
    value = float(result[0]["value"][1])  # type: ignore[index]
    return None if math.isnan(value) else value


class BaselineChecker:
    def __init__(self, pd_url: str, prometheus_url: str, matchers: Mapping[str, str], timeout_s: float = 10) -> None:
        self.pd_url = pd_url.rstrip("/")
        self.matchers = dict(matchers)
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.prometheus = PrometheusConnect(prometheus_url, disable_ssl=True, timeout=timeout_s)

    def check(self) -> BaselineResult:
        answer = self.session.get(f"{self.pd_url}/pd/api/v1/stores", timeout=self.timeout_s).json()
        violated = ok = unknown = 0
        stores = answer.get("stores") or []
        for entry in stores:
            store = entry["store"]
            if store.get("state_name", "Up") != "Up":
                violated += 1
                continue
            ok += 1
            values = {name: _first(self.prometheus.custom_query(expr))
                      for name, expr in store_queries(self.matchers, store["status_address"]).items()}
            p99, capacity, available = values["p99"], values["capacity"], values["available"]
            if p99 is None:
                unknown += 1
            elif p99 > LATENCY_LIMIT_S:
                violated += 1
            else:
                ok += 1
            if capacity is None or available is None or capacity <= 0:
                unknown += 1
            elif (capacity - available) / capacity > DISK_LIMIT:
                violated += 1
            else:
                ok += 1
        return BaselineResult(len(stores), violated, ok, unknown)

    def close(self) -> None:
        self.session.close()
        self.prometheus._session.close()
