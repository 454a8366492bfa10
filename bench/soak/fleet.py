"""`python -m bench.soak.fleet`: the soak's simulated TiKV clusters, in a process of their own (their CPU is
never the operator's or the harness'). One tikv_sim Simulator per cluster, so each has its own deployment
convention (tiup's status address, a TidbMonitor's pod name, kube-prometheus' pod label), its own control
API and its own file_sd file, whose targets carry `soak_run` and `soak_cluster` labels (a TiKVCluster's
labelMatchers pick its own cluster's series, PD members included, out of the shared Prometheus).

Beside them, the hostile tenants' PDs (harness.hostile_pd: one answering without end, one with NaN and
Infinity for numbers), listed in the state file under `hostile_pds`.

It writes a JSON state file once every cluster listens, and runs until SIGTERM or --max-seconds."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from harness.hostile_pd import MODES as HOSTILE_PD_MODES
from harness.hostile_pd import HostilePD

from bench.sim_host import publish_and_wait
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.simulator import SimConfig, Simulator
from tikv_sim.store_model import Timing

CONVENTIONS = ("status-address", "pod-name", "pod-label")


def convention_of(index: int) -> str:
    """Round robin, so every size of fleet mixes the three."""
    return CONVENTIONS[index % len(CONVENTIONS)]


def sim_config(name: str, convention: str, stores: int, run: str, file_sd_dir: Path, timing: Timing,
               seed: int) -> SimConfig:
    # kube-prometheus' targets go to the platform's kubernetes-pods job, which relabels __meta_kubernetes_*.
    folder = file_sd_dir / "kubernetes" if convention == "pod-label" else file_sd_dir
    return SimConfig(stores=stores, name=name, control_port=0, instance_label=InstanceLabel(convention),
                     timing=timing, file_sd=folder / f"{run}-{name}.json",
                     extra_labels={"soak_run": run, "soak_cluster": name}, grpc_series="lean", seed=seed)


async def serve(args: argparse.Namespace) -> None:
    timing = Timing(heartbeat_interval=args.heartbeat_interval, disconnect_after=args.disconnect_after,
                    down_after=args.down_after, persist_interval=args.persist_interval)
    file_sd_dir = Path(args.file_sd_dir)
    (file_sd_dir / "kubernetes").mkdir(parents=True, exist_ok=True)
    sims: dict[str, tuple[str, Simulator]] = {}
    hostile = [HostilePD(mode) for mode in args.hostile_pd]
    try:
        for pd in hostile:
            pd.start()
        for index in range(args.clusters):
            name, convention = f"c{index + 1:02d}", convention_of(index)
            sim = Simulator(sim_config(name, convention, args.stores, args.run, file_sd_dir, timing,
                                       args.seed + index))
            await sim.start()
            sims[name] = (convention, sim)
        state: dict[str, Any] = {"clusters": [], "hostile_pds": {pd.mode: pd.url for pd in hostile}}
        for name, (convention, sim) in sims.items():
            summary = sim.summary()
            cluster = summary["clusters"][0]
            state["clusters"].append({
                "name": name, "convention": convention, "control_url": summary["control_url"],
                "pd_url": cluster["pd_url"],
                "stores": [{"id": s["id"], "disk_used_percent": s["disk_used_percent"], "p99_ms": s["p99_ms"]}
                           for s in cluster["stores"]],
                "targets": [t for group in sim.target_groups() for t in group["targets"]],
            })
        await publish_and_wait(Path(args.state_file), state, args.max_seconds)
    finally:
        for pd in hostile:
            pd.stop()
        for _, sim in sims.values():
            await sim.stop()
            if sim.config.file_sd is not None:
                sim.config.file_sd.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--run", required=True, help="the soak_run label (the run's namespace)")
    parser.add_argument("--file-sd-dir", required=True)
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--disconnect-after", type=float, default=2.0)
    parser.add_argument("--down-after", type=float, default=12.0)
    # PD persists heartbeats every 5m and calls a store Down after 30m: a PD leader change can only show stores
    # Disconnected on their persisted heartbeats. Compressed, the proportion must hold (2 s < 12 s), or every
    # leader change would read a running store Down from a stale heartbeat and page.
    parser.add_argument("--persist-interval", type=float, default=2.0)
    parser.add_argument("--hostile-pd", action="append", default=[], choices=HOSTILE_PD_MODES,
                        help="also serve a hostile PD of this mode (repeatable)")
    parser.add_argument("--max-seconds", type=float, default=3 * 3600.0, help="stop by itself after this long")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
