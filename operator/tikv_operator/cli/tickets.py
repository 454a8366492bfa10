"""`tikv-operator tickets list|show|resolve|hold|unhold|ack`: the original tool's ticket commands on OperatorTickets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tikv_operator.cli.tickets_output import (
    EXIT_USER_ERROR,
    HELD_MARK,
    NO_TICKETS,
    Outcome,
    Ticket,
    TicketLookupError,
    is_ticket_name,
    not_found_message,
    plan_ack,
    plan_hold,
    plan_resolve,
    plan_unhold,
    resolve_id,
    select_tickets,
    show_lines,
    table_columns,
    table_row,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from tikv_operator.cli.ticket_api import TicketApi

T = TypeVar("T")

# Exit code of a failed Kubernetes request (forbidden, unreachable, bad kubeconfig); 1 is the user's error.
EXIT_KUBERNETES = 2

app = typer.Typer(
    name="tickets",
    help="List OperatorTickets and hold, unhold, acknowledge or resolve them (with your kubeconfig).",
    no_args_is_help=True,
)


class StatusChoice(StrEnum):
    """The phases in lower case, as `--status` takes them (any case); a unit test keeps them equal to PHASES."""

    open = "open"
    acknowledged = "acknowledged"
    diagnosed = "diagnosed"
    resolved = "resolved"


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", help="Namespace of the tickets (default: the kubeconfig context's, else default)."
    ),
]
TicketIdArgument = Annotated[str, typer.Argument(metavar="ID", help="Ticket name, or a unique prefix of one.")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _run(work: Coroutine[Any, Any, T]) -> T:
    # Imported here, not at the top: kubernetes_asyncio takes over a second to import, which
    # `--help`, `--version` and the other commands should not pay for.
    from tikv_operator.cli.ticket_api import KubernetesError

    try:
        return asyncio.run(work)
    except KubernetesError as error:
        _fail(str(error), EXIT_KUBERNETES)


def _connect() -> AbstractAsyncContextManager[TicketApi]:
    from tikv_operator.cli.ticket_api import connect

    return connect()


@app.command("list")
def list_tickets(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array instead of a table.")] = False,
    status: Annotated[
        StatusChoice | None, typer.Option("--status", case_sensitive=False, help="Only tickets in this phase.")
    ] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only tickets of this TiKVCluster.")] = None,
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Tickets of every namespace (wins over -n, as in kubectl).")
    ] = False,
) -> None:
    """List tickets: ID, Status, Invariant, Store, Count, First Seen, Held."""

    async def fetch() -> list[dict[str, Any]]:
        async with _connect() as api:
            return await api.list(None if all_namespaces else namespace or api.default_namespace)

    tickets = select_tickets(_run(fetch()), phase=status.value if status else None, cluster=cluster)
    if as_json:
        typer.echo(json.dumps([t.to_json() for t in tickets], indent=2))
        return
    if not tickets:
        typer.echo(NO_TICKETS)
        return
    _print_table(tickets, all_namespaces)


def _print_table(tickets: list[Ticket], all_namespaces: bool) -> None:
    console = Console()
    if not console.is_terminal:
        # Piped output (grep, a file) gets one line per ticket, never names wrapped to fit 80 columns.
        console = Console(width=1000)
    table = Table(show_edge=False, header_style="bold")
    for column in table_columns(all_namespaces):
        table.add_column(column, no_wrap=column in ("ID", "Namespace"))
    for ticket in tickets:
        # Text, not str: rich would read square brackets in a cell as markup.
        cells = [Text(cell) for cell in table_row(ticket, all_namespaces)]
        if ticket.held:
            cells[-1] = Text(HELD_MARK, style="bold red")
        table.add_row(*cells)
    console.print(table)


async def _find(api: TicketApi, namespace: str, ticket_id: str) -> Ticket:
    """The ticket an ID names: by name with one GET (which needs no list permission), else by unique prefix."""
    if is_ticket_name(ticket_id):
        found = await api.get(namespace, ticket_id)
        if found is not None:
            return Ticket.from_object(found)
    objects = {str(o["metadata"]["name"]): o for o in await api.list(namespace)}
    return Ticket.from_object(objects[resolve_id(ticket_id, objects)])


def _change(ticket_id: str, namespace: str | None, plan: Callable[[Ticket], Outcome]) -> None:
    from tikv_operator.cli.ticket_api import TicketNotFound

    async def work() -> Outcome:
        async with _connect() as api:
            where = namespace or api.default_namespace
            ticket = await _find(api, where, ticket_id)
            outcome = plan(ticket)
            try:
                if outcome.status_patch is not None:
                    await api.patch_status(where, ticket.name, outcome.status_patch)
                if outcome.object_patch is not None:
                    await api.patch(where, ticket.name, outcome.object_patch)
            except TicketNotFound:
                # Deleted between the read and the patch (retention, or a person).
                raise TicketLookupError(not_found_message(ticket_id)) from None
            return outcome

    try:
        outcome = _run(work())
    except TicketLookupError as error:
        _fail(str(error), EXIT_USER_ERROR)
    if outcome.is_error:
        _fail(outcome.message, outcome.exit_code)
    typer.echo(outcome.message)


@app.command()
def show(
    ticket_id: TicketIdArgument,
    namespace: NamespaceOption = None,
) -> None:
    """Show one ticket: its cause or diagnosis (rules 26 and 27), its history and its evidence."""

    async def work() -> tuple[Ticket, Ticket | None]:
        async with _connect() as api:
            where = namespace or api.default_namespace
            ticket = await _find(api, where, ticket_id)
            cause = None
            if ticket.status.cause is not None:
                found = await api.get(where, ticket.status.cause.ticket)
                cause = Ticket.from_object(found) if found is not None else None
            return ticket, cause

    try:
        ticket, cause = _run(work())
    except TicketLookupError as error:
        _fail(str(error), EXIT_USER_ERROR)
    typer.echo("\n".join(show_lines(ticket, cause)))


@app.command()
def resolve(
    ticket_id: TicketIdArgument,
    namespace: NamespaceOption = None,
) -> None:
    """Resolve a ticket by hand (this also releases a hold)."""
    _change(ticket_id, namespace, lambda ticket: plan_resolve(ticket, datetime.now(UTC)))


@app.command()
def hold(
    ticket_id: TicketIdArgument,
    namespace: NamespaceOption = None,
) -> None:
    """Hold a ticket: it stays open when the condition clears."""
    _change(ticket_id, namespace, plan_hold)


@app.command()
def unhold(
    ticket_id: TicketIdArgument,
    namespace: NamespaceOption = None,
) -> None:
    """Release a hold: the ticket auto-resolves when the condition clears."""
    _change(ticket_id, namespace, plan_unhold)


@app.command()
def ack(
    ticket_id: TicketIdArgument,
    namespace: NamespaceOption = None,
) -> None:
    """Acknowledge an open ticket (someone is looking at it): the operator silences its pages in Alertmanager."""
    _change(ticket_id, namespace, plan_ack)
