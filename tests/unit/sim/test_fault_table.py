"""The fault table (tikv_sim.faults._KINDS) is the one list of fault kinds: the control API's vocabulary, the
model's actions and the `tikv-sim fault` commands all come from it."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tikv_sim import cli
from tikv_sim.faults import _KINDS, FAULT_KINDS, TIMELINES, USER_KINDS, Fault

FAULT_GROUP: Any = typer.main.get_command(cli.app).commands["fault"]  # type: ignore[attr-defined]


def test_every_user_kind_is_one_cli_command_with_the_table_help() -> None:
    assert list(FAULT_GROUP.commands) == list(FAULT_KINDS) == list(USER_KINDS)
    for name, kind in USER_KINDS.items():
        assert FAULT_GROUP.commands[name].help == kind.help


def test_internal_steps_are_not_commands_and_timelines_have_no_action() -> None:
    assert {name for name, kind in _KINDS.items() if kind.internal} == {"drain-store", "remove-store", "oom-stop"}
    assert {"restart-store", "rolling-restart", "scale-in", "oom-kill"} == TIMELINES
    assert all(kind.action is not None for name, kind in _KINDS.items() if name not in TIMELINES)


@pytest.mark.parametrize("name", FAULT_KINDS)
def test_a_commands_parameters_are_its_kinds_fields(name: str) -> None:
    kind = USER_KINDS[name]
    params = {p.name: p for p in FAULT_GROUP.commands[name].params}

    assert list(params) == [*(["store"] if kind.needs_store else []), *(f.replace("-", "_") for f in kind.fields),
                            "control", "state_file", "cluster"]
    for field, spec in kind.fields.items():
        param = params[field.replace("-", "_")]
        assert param.param_type_name == ("argument" if spec.argument else "option")
        assert param.required == spec.required
        assert (getattr(param, "help", None) or "") == spec.help


@pytest.mark.parametrize(("argv", "sent"), [
    (["stop-store", "3"], {"fault": "stop-store", "store": 3}),
    (["store-state", "1", "Offline", "--cluster", "tidb/basic"],
     {"fault": "store-state", "cluster": "tidb/basic", "store": 1, "state": "Offline"}),
    (["latency", "2", "--p99-ms", "50", "--type", "kv_get", "--weight", "100"],
     {"fault": "latency", "store": 2, "p99_ms": 50.0, "type": "kv_get", "weight": 100}),
    (["regions", "--miss-peer", "3", "--member", "followers"],
     {"fault": "regions", "miss-peer": 3, "member": "followers"}),
    (["pd", "--mode", "wrong-shape"], {"fault": "pd", "mode": "wrong-shape"}),
    (["pd-leader-change", "--election-seconds", "1"], {"fault": "pd-leader-change", "election_seconds": 1.0}),
    (["critical-error", "4"], {"fault": "critical-error", "store": 4}),
    (["oom-kill", "2", "--times", "3", "--downtime", "25"], {"fault": "oom-kill", "store": 2, "times": 3,
                                                             "downtime": 25.0}),
    (["node-failure", "node-2"], {"fault": "node-failure", "node": "node-2"}),
    (["store-node", "3", "node-1"], {"fault": "store-node", "store": 3, "node": "node-1"}),
    (["cascade", "on"], {"fault": "cascade", "mode": "on"}),
])
def test_a_command_sends_the_fault_of_its_arguments(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                    sent: dict[str, Any]) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "_send", lambda control, state_file, fault: seen.append(fault))

    result = CliRunner().invoke(cli.app, ["fault", *argv])

    assert result.exit_code == 0, result.output
    assert seen == [sent]
    Fault.from_mapping(sent)  # the vocabulary takes what the CLI sends


def test_an_inclusive_lower_bound_is_checked_by_the_cli_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_send", lambda *_: pytest.fail("sent"))

    result = CliRunner().invoke(cli.app, ["fault", "leaders", "1", "--count", "-1"])

    assert result.exit_code == 2
