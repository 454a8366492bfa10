"""The `tikv-operator` command line."""

import typer

from tikv_operator import __version__
from tikv_operator.cli.monitor import monitor
from tikv_operator.cli.run import run
from tikv_operator.cli.tickets import app as tickets_app

app = typer.Typer(
    name="tikv-operator",
    help="Watch TiKV clusters and keep their broken health invariants as OperatorTicket resources.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tikv-operator {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Watch TiKV clusters and keep their broken health invariants as OperatorTicket resources."""


# Sub-commands, one module each; `run` and `monitor` join them here.
app.add_typer(tickets_app, name="tickets")
app.command("run")(run)
app.command("monitor")(monitor)


def main() -> None:
    app()
