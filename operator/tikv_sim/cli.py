"""The `tikv-sim` command line: run simulated clusters, inject faults, play scenarios."""

import asyncio
import contextlib
import json
import os
import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from tikv_sim import __version__
from tikv_sim.cluster_model import REGION_CHECKS, InstanceLabel, PdMode
from tikv_sim.faults import Fault, FaultError
from tikv_sim.raft_metrics import DEFAULT_CRITICAL_ERROR
from tikv_sim.scenario import parse_scenario, play
from tikv_sim.simulator import SimConfig, Simulator
from tikv_sim.store_model import Timing

CONTROL_ENV = "TIKV_SIM_CONTROL"
STATE_ENV = "TIKV_SIM_STATE"

app = typer.Typer(
    name="tikv-sim",
    help="A simulated TiKV cluster: PD HTTP API, per-store TiKV metrics, and faults to inject.",
    no_args_is_help=True,
    add_completion=False,
)
fault_app = typer.Typer(
    help="Inject a fault into a running tikv-sim (through its control API). Each command is one fault of "
    "the vocabulary scenario files and POST /api/v1/faults also take (tikv_sim.faults).",
    no_args_is_help=True,
)
app.add_typer(fault_app, name="fault")


class InstanceLabelChoice(StrEnum):
    status_address = InstanceLabel.STATUS_ADDRESS.value
    pod_name = InstanceLabel.POD_NAME.value
    pod_label = InstanceLabel.POD_LABEL.value


class GrpcSeriesChoice(StrEnum):
    full = "full"
    lean = "lean"


class MemberChoice(StrEnum):
    leader = "leader"
    followers = "followers"


class PdModeChoice(StrEnum):
    ok = PdMode.OK.value
    error_500 = PdMode.ERROR_500.value
    hang = PdMode.HANG.value
    malformed = PdMode.MALFORMED.value
    wrong_shape = PdMode.WRONG_SHAPE.value
    unreachable = PdMode.UNREACHABLE.value
    not_bootstrapped = PdMode.NOT_BOOTSTRAPPED.value


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"labels are key=value, got {pair!r}")
        labels[key] = value
    return labels


def _parse_namespaces(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise typer.BadParameter("--namespaces takes a comma-separated list, e.g. a,b")
    return names


@app.command()
def version() -> None:
    """Print the version of tikv-sim."""
    typer.echo(f"tikv-sim {__version__}")


@app.command()
def run(
    stores: Annotated[int, typer.Option(min=1, help="Stores per cluster.")] = 3,
    clusters: Annotated[int, typer.Option(min=1, help="Clusters to simulate in this process.")] = 1,
    name: Annotated[str, typer.Option(help="Cluster name (-1, -2... added for several).")] = "basic",
    namespace: Annotated[str, typer.Option(help="Namespace used in pod-name addresses and labels.")] = "tidb",
    pd_port: Annotated[int, typer.Option(help="PD port (first of consecutive ones); 0: free.")] = 0,
    pd_host: Annotated[str, typer.Option(
        help="Address PD's API listens on: a 127.0.0.0/8 one, or a node's $NODE_HOST_ADDRESS for pods.")
    ] = "127.0.0.1",
    control_port: Annotated[int, typer.Option(help="Control API port; 0 picks a free one.")] = 0,
    file_sd: Annotated[Path | None, typer.Option(help="Write a Prometheus file_sd target file here.")] = None,
    instance_label: Annotated[
        InstanceLabelChoice,
        typer.Option(help="status-address (tiup), pod-name (TidbMonitor) or pod-label (kube-prometheus)."),
    ] = InstanceLabelChoice.status_address,
    namespaces: Annotated[
        str | None, typer.Option(help="One cluster per namespace, same names in each: a,b (overrides --namespace).")
    ] = None,
    tiflash: Annotated[int, typer.Option(min=0, help="TiFlash stores per cluster (after the TiKV ones).")] = 0,
    grpc_series: Annotated[
        GrpcSeriesChoice, typer.Option(help="full: all 50 gRPC types x 4 priorities; lean: a dozen x 2.")
    ] = GrpcSeriesChoice.full,
    status_address: Annotated[
        bool, typer.Option(help="--no-status-address: PD shows none (tidb-operator v1 without dynamic config).")
    ] = True,
    host_network: Annotated[
        bool, typer.Option(help="PD lists stores at IP addresses; Prometheus keeps pod names (Kubernetes modes).")
    ] = False,
    shuffle_stores: Annotated[bool, typer.Option(help="/stores in a new order on every call, as PD.")] = True,
    seed: Annotated[int | None, typer.Option(help="Seed of the /stores order (default: random).")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Extra k=v label on every target.")] = None,
    p99_ms: Annotated[float, typer.Option(help="Initial gRPC p99 latency of every store, in ms.")] = 10.0,
    heartbeat_interval: Annotated[float, typer.Option(help="Store heartbeat interval (s).")] = 10.0,
    disconnect_after: Annotated[float, typer.Option(help="Seconds before Disconnected.")] = 20.0,
    down_after: Annotated[float, typer.Option(help="max-store-down-time (s) before Down.")] = 1800.0,
    persist_interval: Annotated[
        float, typer.Option(help="How often PD persists a heartbeat (s); a new leader starts from it.")
    ] = 300.0,
    scenario: Annotated[Path | None, typer.Option(help="YAML scenario of faults to play.")] = None,
    state_file: Annotated[Path | None, typer.Option(help="Write the URLs here (JSON).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after N seconds.")] = None,
) -> None:
    """Run simulated clusters until interrupted; print where PD, the control API and stores listen."""
    steps = parse_scenario(scenario.read_text()) if scenario else []
    config = SimConfig(
        stores=stores,
        clusters=clusters,
        name=name,
        namespace=namespace,
        instance_label=InstanceLabel(instance_label.value),
        pd_port=pd_port,
        pd_host=pd_host,
        control_port=control_port,
        p99_ms=p99_ms,
        timing=Timing(
            heartbeat_interval=heartbeat_interval,
            disconnect_after=disconnect_after,
            down_after=down_after,
            persist_interval=persist_interval,
        ),
        file_sd=file_sd,
        extra_labels=_parse_labels(label or []),
        seed=seed,
        shuffle_stores=shuffle_stores,
        status_address=status_address,
        host_network=host_network,
        tiflash=tiflash,
        grpc_series=grpc_series.value,
        namespaces=_parse_namespaces(namespaces),
    )
    try:
        config.validate()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    asyncio.run(_serve(config, steps, state_file, duration))


async def _serve(config: SimConfig, steps: list[Any], state_file: Path | None, duration: float | None) -> None:
    sim = Simulator(config)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        summary = sim.summary()
        if state_file is not None:
            await asyncio.to_thread(state_file.write_text, json.dumps(summary, indent=2) + "\n")
        _print_summary(summary, config.file_sd)
        started = loop.time()
        player = None
        if steps:

            def announce(step: Any) -> None:
                typer.echo(f"[{step.at_seconds:>7.1f}s] {json.dumps(step.fault.to_mapping())}")

            player = asyncio.create_task(
                play(steps, sim.apply, asyncio.sleep, lambda: loop.time() - started, on_step=announce)
            )
            player.add_done_callback(_report_scenario_failure)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
        if player is not None:
            player.cancel()
    finally:
        await sim.stop()


def _report_scenario_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        typer.echo(f"scenario stopped: {task.exception()}", err=True)


def _print_summary(summary: dict[str, Any], file_sd: Path | None) -> None:
    typer.echo(f"control: {summary['control_url']}   (export {CONTROL_ENV}={summary['control_url']})")
    for cluster in summary["clusters"][:5]:
        typer.echo(f"cluster {cluster['key']}: PD {cluster['pd_url']}")
        for member in cluster["pd_members"]:
            leading = "  (leader)" if member["leader"] else ""
            typer.echo(f"  PD member {member['name']}: {member['metrics_url']}{leading}")
        for store in cluster["stores"]:
            typer.echo(f"  store {store['id']}: {store['metrics_url']}  instance={store['instance']}")
    if len(summary["clusters"]) > 5:
        typer.echo(f"... and {len(summary['clusters']) - 5} more clusters (see --state-file)")
    if file_sd is not None:
        typer.echo(f"file_sd: {file_sd}")
    typer.echo("Ctrl+C to stop.", err=True)


# --- client side --------------------------------------------------------------------------------
ControlOption = Annotated[
    str | None, typer.Option("--control", help=f"Control API URL (default: ${CONTROL_ENV} or --state-file).")
]
StateOption = Annotated[Path | None, typer.Option("--state-file", help=f"State file (or ${STATE_ENV}).")]
ClusterOption = Annotated[
    str | None, typer.Option("--cluster", help="Cluster name or <namespace>/<name> (default: the first).")
]


def _control_url(control: str | None, state_file: Path | None) -> str:
    if control:
        return control.rstrip("/")
    if os.environ.get(CONTROL_ENV):
        return os.environ[CONTROL_ENV].rstrip("/")
    path = state_file or (Path(os.environ[STATE_ENV]) if os.environ.get(STATE_ENV) else None)
    if path is None:
        raise typer.BadParameter(f"say where tikv-sim listens: --control URL, ${CONTROL_ENV} or --state-file")
    try:
        return str(json.loads(path.read_text())["control_url"]).rstrip("/")
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror} (is `tikv-sim run --state-file {path}` running?)")
    except (ValueError, KeyError, TypeError):
        _fail(f"{path} is not a tikv-sim state file (no control_url in it)")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _send(control: str | None, state_file: Path | None, fault: dict[str, Any]) -> None:
    url = _control_url(control, state_file)
    try:
        Fault.from_mapping(fault)  # a clear message before any network trip
        response = httpx.post(f"{url}/api/v1/faults", json=fault, timeout=10)
    except FaultError as error:
        raise typer.BadParameter(str(error)) from None
    except httpx.HTTPError as error:
        _fail(f"cannot reach tikv-sim at {url}: {error}")
    body = response.json()
    if response.status_code != 200:
        typer.echo(f"error: {body.get('error', body)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"applied {json.dumps(body['applied'])} to cluster {body['cluster']['key']}")
    for step in body.get("steps", []):
        typer.echo(f"  at +{step.pop('at'):g}s: {json.dumps(step)}")


def _fault(kind: str, cluster: str | None, **params: Any) -> dict[str, Any]:
    fault: dict[str, Any] = {"fault": kind}
    if cluster is not None:
        fault["cluster"] = cluster
    return fault | {k: v for k, v in params.items() if v is not None}


@fault_app.command("stop-store")
def stop_store(
    store: int, control: ControlOption = None, state_file: StateOption = None, cluster: ClusterOption = None
) -> None:
    """Stop a store's process: no more heartbeats, its metrics endpoint refuses connections."""
    _send(control, state_file, _fault("stop-store", cluster, store=store))


@fault_app.command("start-store")
def start_store(
    store: int, control: ControlOption = None, state_file: StateOption = None, cluster: ClusterOption = None
) -> None:
    """Start a stopped store again (a restart: new start time, counters from zero)."""
    _send(control, state_file, _fault("start-store", cluster, store=store))


@fault_app.command("store-state")
def store_state(
    store: int,
    state: Annotated[str, typer.Argument(help="Up, Offline or Tombstone.")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set a store's PD meta state (what `pd-ctl store delete` / removal does)."""
    _send(control, state_file, _fault("store-state", cluster, store=store, state=state))


@fault_app.command("disk")
def disk(
    store: int,
    percent: Annotated[float, typer.Option(help="Used share of the disk, 0..100.")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Fill a store's disk to PERCENT used."""
    _send(control, state_file, _fault("disk", cluster, store=store, percent=percent))


@fault_app.command("latency")
def latency(
    store: int,
    p99_ms: Annotated[float, typer.Option(help="gRPC p99 latency in milliseconds.")],
    msg_type: Annotated[
        str | None, typer.Option("--type", help="One gRPC type (kv_pessimistic_lock, unsafe_destroy_range, ...).")
    ] = None,
    weight: Annotated[
        int | None, typer.Option(help="That type's share of the store's requests, per mille (with --type).")
    ] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set a store's gRPC p99 latency: of every foreground type, or of one --type."""
    _send(control, state_file, _fault("latency", cluster, store=store, p99_ms=p99_ms, type=msg_type, weight=weight))


@fault_app.command("pd-leader-change")
def pd_leader_change(
    election_seconds: Annotated[float | None, typer.Option(help="No leader: 503 (default 3).")] = None,
    not_bootstrapped_seconds: Annotated[
        float | None, typer.Option(help="New leader not serving yet: 500 (default 1).")
    ] = None,
    reconnect_seconds: Annotated[
        float | None, typer.Option(help="Until stores' heartbeats reach the new leader (default 0).")
    ] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Elect a new PD leader: 503, then 500 not bootstrapped, then stores Disconnected until their next heartbeat."""
    params = {
        "election_seconds": election_seconds,
        "not_bootstrapped_seconds": not_bootstrapped_seconds,
        "reconnect_seconds": reconnect_seconds,
    }
    _send(control, state_file, _fault("pd-leader-change", cluster, **params))


@fault_app.command("restart-store")
def restart_store(
    store: int,
    downtime: Annotated[float | None, typer.Option(help="Seconds before it starts again (default 30).")] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Restart a store: stop now, start after DOWNTIME (new start time, counters from zero)."""
    _send(control, state_file, _fault("restart-store", cluster, store=store, downtime=downtime))


@fault_app.command("rolling-restart")
def rolling_restart(
    downtime: Annotated[float | None, typer.Option(help="Seconds each store is down (default 30).")] = None,
    gap: Annotated[float | None, typer.Option(help="Seconds between one start and the next stop (default 10).")] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Restart every running TiKV store (not TiFlash) one at a time, in id order."""
    _send(control, state_file, _fault("rolling-restart", cluster, downtime=downtime, gap=gap))


@fault_app.command("scale-in")
def scale_in(
    store: int,
    drain_seconds: Annotated[float | None, typer.Option(help="Seconds to move its regions away (default 30).")] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Remove a store: Offline while its regions drain, then Tombstone and its pod deleted."""
    _send(control, state_file, _fault("scale-in", cluster, store=store, drain_seconds=drain_seconds))


@fault_app.command("replace-store")
def replace_store(
    store: int, control: ControlOption = None, state_file: StateOption = None, cluster: ClusterOption = None
) -> None:
    """Lose a store's disk: it stays Offline (physically destroyed); a new store takes its address and pod."""
    _send(control, state_file, _fault("replace-store", cluster, store=store))


@fault_app.command("slow-score")
def slow_score(
    store: int,
    score: Annotated[int, typer.Option(help="1 (healthy) .. 100; PD calls a store slow at 80.")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set a store's slow score."""
    _send(control, state_file, _fault("slow-score", cluster, store=store, score=score))


@fault_app.command("write-stall")
def write_stall(
    store: int,
    micros: Annotated[float, typer.Option(help="tikv_engine_write_stall (microseconds); 0 is healthy.")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set a store's RocksDB write stall gauge."""
    _send(control, state_file, _fault("write-stall", cluster, store=store, micros=micros))


@fault_app.command("l0-avg")
def l0_avg(
    store: int,
    files: Annotated[int, typer.Option(help="tikv_scheduler_l0_avg; the official alert fires above 80.")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set a store's average number of L0 files."""
    _send(control, state_file, _fault("l0-avg", cluster, store=store, files=files))


@fault_app.command("leaders")
def leaders(
    store: int,
    count: Annotated[int, typer.Option(min=0, help="Region leaders on the store.")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set a store's leader count: TiKV's region_count gauge at once, PD's /stores after the next heartbeat."""
    _send(control, state_file, _fault("leaders", cluster, store=store, count=count))


@fault_app.command("raft-log-lag")
def raft_log_lag(
    store: int,
    entries: Annotated[float, typer.Option(help="p99 of tikv_raftstore_log_lag (entries; healthy 10).")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set the p99 of a store's raft log lag (the official alert fires above 5000)."""
    _send(control, state_file, _fault("raft-log-lag", cluster, store=store, entries=entries))


@fault_app.command("raft-append")
def raft_append(
    store: int,
    p99_ms: Annotated[float, typer.Option(help="p99 of tikv_raftstore_append_log_duration_seconds, ms (healthy 5).")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set the p99 of a store's raft log append duration."""
    _send(control, state_file, _fault("raft-append", cluster, store=store, p99_ms=p99_ms))


@fault_app.command("raft-apply")
def raft_apply(
    store: int,
    p99_ms: Annotated[float, typer.Option(help="p99 of tikv_raftstore_apply_log_duration_seconds, ms (healthy 5).")],
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set the p99 of a store's raft log apply duration."""
    _send(control, state_file, _fault("raft-apply", cluster, store=store, p99_ms=p99_ms))


@fault_app.command("critical-error")
def critical_error(
    store: int,
    error_type: Annotated[
        str | None, typer.Option("--type", help=f"The `type` label (default {DEFAULT_CRITICAL_ERROR}).")
    ] = None,
    count: Annotated[int | None, typer.Option(min=0, help="How many errors to add (default 1).")] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Count critical errors in a running store: tikv_critical_error_total{type} appears (a restart drops it)."""
    _send(control, state_file, _fault("critical-error", cluster, store=store, type=error_type, count=count))


@fault_app.command("regions")
def regions(
    miss_peer: Annotated[int | None, typer.Option()] = None,
    extra_peer: Annotated[int | None, typer.Option()] = None,
    down_peer: Annotated[int | None, typer.Option()] = None,
    pending_peer: Annotated[int | None, typer.Option()] = None,
    offline_peer: Annotated[int | None, typer.Option()] = None,
    learner_peer: Annotated[int | None, typer.Option()] = None,
    empty_region: Annotated[int | None, typer.Option()] = None,
    oversized_region: Annotated[int | None, typer.Option()] = None,
    undersized_region: Annotated[int | None, typer.Option()] = None,
    member: Annotated[
        MemberChoice | None,
        typer.Option(
            help="leader (default): PD's answers and the leader's gauges; followers: their stale gauges only."
        ),
    ] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Set how many regions PD reports with each problem (others stay as they are)."""
    values = locals()
    counts = {kind: values[kind.replace("-", "_")] for kind in REGION_CHECKS}
    scope = None if member is None else member.value
    _send(control, state_file, _fault("regions", cluster, **counts, member=scope))


@fault_app.command("pd")
def pd(
    mode: Annotated[PdModeChoice, typer.Option(help="How PD answers.")],
    hang_seconds: Annotated[float | None, typer.Option(help="How long a hang lasts (default 30).")] = None,
    control: ControlOption = None,
    state_file: StateOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Make PD fail: 500, hang, malformed, wrong-shape, unreachable, not-bootstrapped; `ok` heals it."""
    _send(control, state_file, _fault("pd", cluster, mode=mode.value, hang_seconds=hang_seconds))


@app.command()
def status(control: ControlOption = None, state_file: StateOption = None) -> None:
    """Show the simulated clusters and their stores as the simulator sees them."""
    url = _control_url(control, state_file)
    try:
        summary = httpx.get(f"{url}/api/v1/clusters", timeout=10).json()
    except httpx.HTTPError as error:
        _fail(f"cannot reach tikv-sim at {url}: {error}")
    for cluster in summary["clusters"]:
        typer.echo(
            f"{cluster['key']}  PD {cluster['pd_url']}  mode={cluster['pd_mode']}  "
            f"leader={cluster['pd_leader']} ({cluster['pd_leader_changes']} changes)"
        )
        for member in cluster.get("pd_members", []):
            typer.echo(f"  pd {member['name']:<12} {'leader' if member['leader'] else 'follower':<8} "
                       f"{member['metrics_url']}")  # fmt: skip
        for store in cluster["stores"]:
            typer.echo(
                f"  store {store['id']:<3} {store['engine']:<8} {store['state_name']:<12} "
                f"{'running' if store['running'] else 'stopped':<8} disk={store['disk_used_percent']:.1f}% "
                f"p99={store['p99_ms']:g}ms  {store['pod']}  {store['metrics_url'] or '-'}"
            )


@app.command("play")
def play_command(
    scenario: Annotated[Path, typer.Argument(help="YAML scenario file.", exists=True, dir_okay=False)],
    control: ControlOption = None,
    state_file: StateOption = None,
) -> None:
    """Play a scenario against an already running tikv-sim."""
    url = _control_url(control, state_file)
    steps = parse_scenario(scenario.read_text())

    async def apply(fault: Fault) -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(f"{url}/api/v1/faults", json=fault.to_mapping())
        except httpx.HTTPError as error:
            _fail(f"cannot reach tikv-sim at {url}: {error}")
        if response.status_code != 200:
            typer.echo(f"error: {response.json().get('error')}", err=True)
            raise typer.Exit(1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await play(
            steps,
            apply,
            asyncio.sleep,
            lambda: loop.time() - started,
            on_step=lambda s: typer.echo(f"[{s.at_seconds:>7.1f}s] {json.dumps(s.fault.to_mapping())}"),
        )

    asyncio.run(main())


def main() -> None:
    app()
