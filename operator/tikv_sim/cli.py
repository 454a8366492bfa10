"""The `tikv-sim` command line: run simulated clusters, inject faults, play scenarios."""

import asyncio
import contextlib
import inspect
import json
import os
import signal
from collections.abc import Callable
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from tikv_sim import __version__
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.faults import USER_KINDS, Fault, FaultError, FaultKind, Param
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
    cascade: Annotated[bool, typer.Option(
        help="One fault sets off what PD and TiKV do next: down peers, leaders moving, replicas rebuilt, ... "
             "(also the `cascade` fault).")
    ] = False,
    time_scale: Annotated[float, typer.Option(
        min=0.0001,
        help="Multiply every PD and TiKV clock (the four above and the cascade's): 0.01 plays 30 minutes in 18 s.")
    ] = 1.0,
    nodes: Annotated[int, typer.Option(min=0, help="Nodes the pods of a cluster share, in turn (0: one per pod).")
    ] = 0,
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
        ).scaled(time_scale),
        file_sd=file_sd,
        extra_labels=_parse_labels(label or []),
        seed=seed,
        shuffle_stores=shuffle_stores,
        status_address=status_address,
        host_network=host_network,
        tiflash=tiflash,
        grpc_series=grpc_series.value,
        namespaces=_parse_namespaces(namespaces),
        cascade=cascade,
        nodes=nodes,
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


def _typer_parameter(name: str, param: Param) -> inspect.Parameter:
    """A fault parameter as typer reads it from a signature: an argument or an --option, with its help."""
    kind_type: Any = StrEnum(f"{name}_choices", {v: v for v in param.choices}) if param.choices else param.type
    info_kwargs: dict[str, Any] = {"help": param.help or None}
    if param.argument:
        info: Any = typer.Argument(**info_kwargs)
    else:
        if param.lowest is not None and param.lowest_allowed:
            info_kwargs["min"] = param.lowest
        info = typer.Option(**info_kwargs)
    annotation = Annotated[kind_type if param.required else kind_type | None, info]  # type: ignore[valid-type]
    default = inspect.Parameter.empty if param.required else None
    return inspect.Parameter(name.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


def _fault_command(kind_name: str, kind: FaultKind) -> Callable[..., None]:
    """The `tikv-sim fault <kind>` command of one row of the fault table: STORE (for store faults), the
    fault's parameters, then where tikv-sim listens and which cluster."""
    names = {name.replace("-", "_"): name for name in kind.fields}
    parameters = [
        *([inspect.Parameter("store", inspect.Parameter.KEYWORD_ONLY, annotation=int)] if kind.needs_store else []),
        *(_typer_parameter(name, param) for name, param in kind.fields.items()),
        *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
          for name, annotation in (("control", ControlOption), ("state_file", StateOption),
                                   ("cluster", ClusterOption))),
    ]

    def command(**values: Any) -> None:
        control, state_file, cluster = values.pop("control"), values.pop("state_file"), values.pop("cluster")
        store = {"store": values.pop("store")} if kind.needs_store else {}
        params = {names[key]: value.value if isinstance(value, Enum) else value for key, value in values.items()}
        _send(control, state_file, _fault(kind_name, cluster, **store, **params))

    command.__name__ = kind_name.replace("-", "_")
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


for _name, _kind in USER_KINDS.items():
    fault_app.command(_name, help=_kind.help)(_fault_command(_name, _kind))


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
                f"p99={store['p99_ms']:g}ms  {store['pod']}@{store.get('node', '-')}  {store['metrics_url'] or '-'}"
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
