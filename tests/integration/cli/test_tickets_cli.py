"""`tikv-operator tickets ...` run as a person runs it, against tickets made with kubectl on the real API server.

No operator runs here, so every change seen through kubectl was made by the command under test.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness.kube import Cli
from harness.platform import PlatformInfo

from tests.integration.cli.conftest import Kubeconfig, cli_with_kubeconfig

OPEN_STORE_TICKET = "prod-store-down-s1-1"
HELD_CLUSTER_TICKET = "prod-pd-unreachable-1"
RESOLVED_TICKET = "prod-low-disk-space-s2-1"
COLUMNS = ["ID", "Status", "Invariant", "Store", "Count", "First Seen", "Held"]


def make_ticket(
    kubectl: Cli,
    name: str,
    *,
    cluster: str = "prod",
    invariant: str = "store_down",
    store: str = "1",
    held: bool = False,
    labels: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> None:
    """A ticket as the operator would leave it: created, then its status written through the subresource."""
    spec: dict[str, Any] = {"cluster": cluster, "invariant": invariant, "held": held}
    if store:
        # Omitted rather than "": this platform's kube-apiserver rejects any empty string as "null".
        spec["store"] = store
    kubectl.apply({
        "apiVersion": "tikvops.io/v1alpha1",
        "kind": "OperatorTicket",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    })
    if status is not None:
        kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}))


def make_story(kubectl: Cli) -> None:
    """An open store ticket, a held cluster-wide one and a resolved one whose labels were never updated."""
    make_ticket(kubectl, OPEN_STORE_TICKET, labels={"tikvops.io/phase": "open", "tikvops.io/held": "false"},
                status={"phase": "Open", "severity": "critical", "occurrences": 7,
                        "firstSeen": "2026-01-02T03:04:05Z", "lastSeen": "2026-01-02T03:10:00Z",
                        "message": "store 1 is Disconnected"})
    make_ticket(kubectl, HELD_CLUSTER_TICKET, invariant="pd_unreachable", store="", held=True,
                status={"phase": "Open", "severity": "critical", "occurrences": 2,
                        "firstSeen": "2026-01-02T04:00:00Z"})
    make_ticket(kubectl, RESOLVED_TICKET, invariant="low_disk_space", store="2",
                labels={"tikvops.io/phase": "open"},
                status={"phase": "Resolved", "resolution": "auto", "severity": "warning", "occurrences": 3,
                        "firstSeen": "2026-01-02T05:00:00Z", "resolvedAt": "2026-01-02T05:30:00Z"})


def parse_table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and row cells of the rich table `tickets list` prints."""
    header: list[str] = []
    rows: list[list[str]] = []
    for line in text.splitlines():
        if "┃" in line:
            header = [cell.strip() for cell in line.split("┃")]
        elif "│" in line:
            rows.append([cell.strip() for cell in line.split("│")])
    return header, rows


def kubectl_column(kubectl: Cli, column: str) -> dict[str, str]:
    """One printer column of `kubectl get operatortickets`, by ticket name, read as the person reads it."""
    lines = kubectl("get", "operatortickets").stdout.splitlines()
    start = lines[0].index(column)
    return {line.split()[0]: line[start:].split()[0] for line in lines[1:]}


def ticket_object(kubectl: Cli, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "operatorticket", name)
    return result


def assert_user_error(result: Any, message: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.strip() == message
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------- list


def test_list_shows_the_original_columns_with_held_tickets_marked(tikv_operator: Cli, kubectl: Cli) -> None:
    make_story(kubectl)

    result = tikv_operator("tickets", "list")

    header, rows = parse_table(result.stdout)
    assert header == COLUMNS
    assert rows == [
        [OPEN_STORE_TICKET, "Open", "store_down", "1", "7", "2026-01-02 03:04:05", "-"],
        [HELD_CLUSTER_TICKET, "Open", "pd_unreachable", "-", "2", "2026-01-02 04:00:00", "HELD"],
        [RESOLVED_TICKET, "Resolved", "low_disk_space", "2", "3", "2026-01-02 05:00:00", "-"],
    ]
    assert result.stderr == ""


def test_list_shows_held_in_red_on_a_terminal(tikv_operator: Cli, kubectl: Cli) -> None:
    make_story(kubectl)
    colour = Cli(tikv_operator.program, {**tikv_operator.env, "FORCE_COLOR": "1", "COLUMNS": "200"},
                 tikv_operator.namespace)

    result = colour("tickets", "list")

    red_held = re.findall(r"\x1b\[[0-9;]*31[0-9;]*mHELD\x1b\[0m", result.stdout)
    assert len(red_held) == 1, result.stdout


def test_list_json_parses_back_with_every_field(tikv_operator: Cli, kubectl: Cli) -> None:
    make_story(kubectl)
    created = ticket_object(kubectl, OPEN_STORE_TICKET)["metadata"]["creationTimestamp"]

    tickets = json.loads(tikv_operator("tickets", "list", "--json").stdout)

    assert [t["name"] for t in tickets] == [OPEN_STORE_TICKET, HELD_CLUSTER_TICKET, RESOLVED_TICKET]
    assert tickets[0] == {
        "name": OPEN_STORE_TICKET, "namespace": kubectl.namespace, "cluster": "prod", "invariant": "store_down",
        "store": "1", "held": False, "phase": "Open", "severity": "critical", "occurrences": 7,
        "firstSeen": "2026-01-02T03:04:05Z", "lastSeen": "2026-01-02T03:10:00Z",
        "message": "store 1 is Disconnected", "resolution": None, "resolvedAt": None, "resolutionMessage": None,
        "batch": None, "flapping": None, "reopenedAt": [], "evidence": None, "createdAt": created,
    }
    assert (tickets[1]["held"], tickets[1]["store"]) == (True, "")
    assert (tickets[2]["phase"], tickets[2]["resolution"], tickets[2]["resolvedAt"]) == (
        "Resolved", "auto", "2026-01-02T05:30:00Z")


def test_list_status_filter_reads_the_phase_not_the_labels(tikv_operator: Cli, kubectl: Cli) -> None:
    make_story(kubectl)
    make_ticket(kubectl, "prod-high-latency-s3-1", invariant="high_latency", store="3",
                status={"phase": "Acknowledged", "firstSeen": "2026-01-02T06:00:00Z"})

    def names(*args: str) -> list[str]:
        return [t["name"] for t in json.loads(tikv_operator("tickets", "list", "--json", *args).stdout)]

    # The resolved ticket's label still says open (no operator ran to update it).
    assert names("--status", "open") == [OPEN_STORE_TICKET, HELD_CLUSTER_TICKET]
    assert names("--status", "RESOLVED") == [RESOLVED_TICKET]
    assert names("--status", "acknowledged") == ["prod-high-latency-s3-1"]
    assert names("--status", "diagnosed") == []
    _, rows = parse_table(tikv_operator("tickets", "list", "--status", "resolved").stdout)
    assert [row[0] for row in rows] == [RESOLVED_TICKET]


def test_list_refuses_an_unknown_status(tikv_operator: Cli) -> None:
    result = tikv_operator("tickets", "list", "--status", "closed", check=False)

    assert result.returncode == 2
    assert "closed" in result.stderr
    assert "open" in result.stderr
    assert "resolved" in result.stderr


def test_list_cluster_filter(tikv_operator: Cli, kubectl: Cli) -> None:
    make_story(kubectl)
    make_ticket(kubectl, "stage-store-down-s1-1", cluster="stage", status={"phase": "Open"})

    stage = json.loads(tikv_operator("tickets", "list", "--json", "--cluster", "stage").stdout)
    _, rows = parse_table(tikv_operator("tickets", "list", "--cluster", "prod").stdout)

    assert [t["name"] for t in stage] == ["stage-store-down-s1-1"]
    assert [row[0] for row in rows] == [OPEN_STORE_TICKET, HELD_CLUSTER_TICKET, RESOLVED_TICKET]


def test_list_all_namespaces_adds_the_namespace_column(
    tikv_operator: Cli, kubectl: Cli, kubectl_admin: Cli, namespace: str
) -> None:
    other = f"{namespace[:50]}-b"
    kubectl_admin("create", "namespace", other)
    try:
        # A cluster name no other test uses, so that tickets left in other namespaces do not show.
        cluster = namespace
        make_ticket(kubectl, f"{cluster}-store-down-s1-1", cluster=cluster,
                    status={"phase": "Open", "firstSeen": "2026-01-02T03:04:05Z"})
        make_ticket(kubectl.in_namespace(other), f"{cluster}-store-down-s2-1", cluster=cluster, store="2",
                    held=True, status={"phase": "Open", "firstSeen": "2026-01-02T03:04:05Z"})

        header, rows = parse_table(tikv_operator("tickets", "list", "-A", "--cluster", cluster).stdout)
        tickets = json.loads(tikv_operator("tickets", "list", "-A", "--cluster", cluster, "--json").stdout)
        only_here = json.loads(tikv_operator("tickets", "list", "--cluster", cluster, "--json").stdout)
    finally:
        kubectl_admin("delete", "namespace", other, "--wait=false", check=False)

    assert header == ["Namespace", *COLUMNS]
    assert [(row[0], row[1], row[-1]) for row in rows] == [
        (namespace, f"{cluster}-store-down-s1-1", "-"), (other, f"{cluster}-store-down-s2-1", "HELD")]
    assert [(t["namespace"], t["name"]) for t in tickets] == [
        (namespace, f"{cluster}-store-down-s1-1"), (other, f"{cluster}-store-down-s2-1")]
    assert [t["name"] for t in only_here] == [f"{cluster}-store-down-s1-1"]


def test_list_defaults_to_the_namespace_of_the_kubeconfig_context(
    platform: PlatformInfo, tikv_operator: Cli, kubectl: Cli, kubeconfig: Kubeconfig, namespace: str
) -> None:
    make_story(kubectl)
    as_user = cli_with_kubeconfig(platform, kubeconfig(namespace=namespace))

    tickets = json.loads(as_user("tickets", "list", "--json").stdout)
    held = as_user("tickets", "hold", OPEN_STORE_TICKET)

    assert [t["name"] for t in tickets] == [OPEN_STORE_TICKET, HELD_CLUSTER_TICKET, RESOLVED_TICKET]
    assert held.stdout == f"Holding ticket {OPEN_STORE_TICKET} - will not auto-resolve\n"
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["spec"]["held"] is True


def test_list_without_a_context_namespace_uses_default(
    platform: PlatformInfo, tikv_operator: Cli, kubectl_admin: Cli, kubeconfig: Kubeconfig, namespace: str
) -> None:
    in_default = kubectl_admin.in_namespace("default")
    name = f"{namespace}-store-down-s1-1"
    make_ticket(in_default, name, cluster=namespace, status={"phase": "Open"})
    try:
        as_user = cli_with_kubeconfig(platform, kubeconfig(namespace=None))
        tickets = json.loads(as_user("tickets", "list", "--json", "--cluster", namespace).stdout)
    finally:
        in_default("delete", "operatorticket", name, check=False)

    assert [(t["namespace"], t["name"]) for t in tickets] == [("default", name)]


def test_list_of_nothing(tikv_operator: Cli) -> None:
    assert tikv_operator("tickets", "list").stdout == "No tickets found.\n"
    assert json.loads(tikv_operator("tickets", "list", "--json").stdout) == []


# ---------------------------------------------------------------------------------- resolve/hold/ack


def test_resolve_overrides_hold_and_keeps_labels_in_step(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, HELD_CLUSTER_TICKET, invariant="pd_unreachable", store="", held=True,
                labels={"tikvops.io/phase": "open", "tikvops.io/held": "true", "tikvops.io/cluster": "prod"},
                status={"phase": "Open", "severity": "critical", "occurrences": 2})
    before = datetime.now(UTC).replace(microsecond=0)

    result = tikv_operator("tickets", "resolve", "prod-pd")  # a unique prefix

    assert result.stdout == f"Resolved ticket {HELD_CLUSTER_TICKET}\n"
    ticket = ticket_object(kubectl, HELD_CLUSTER_TICKET)
    assert ticket["status"]["phase"] == "Resolved"
    assert ticket["status"]["resolution"] == "manual"
    assert ticket["spec"]["held"] is False
    assert ticket["metadata"]["labels"] == {
        "tikvops.io/phase": "resolved", "tikvops.io/held": "false", "tikvops.io/cluster": "prod"}
    # What the operator wrote before is kept: these are merge patches.
    assert (ticket["status"]["severity"], ticket["status"]["occurrences"]) == ("critical", 2)
    resolved_at = ticket["status"]["resolvedAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", resolved_at)
    moment = datetime.fromisoformat(resolved_at.replace("Z", "+00:00"))
    assert before <= moment <= datetime.now(UTC) + timedelta(seconds=1)

    again = tikv_operator("tickets", "resolve", HELD_CLUSTER_TICKET)

    assert again.stdout == f"Ticket {HELD_CLUSTER_TICKET} is already resolved\n"
    assert ticket_object(kubectl, HELD_CLUSTER_TICKET)["status"]["resolvedAt"] == resolved_at


def test_resolve_of_a_ticket_without_status_yet(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, OPEN_STORE_TICKET)

    result = tikv_operator("tickets", "resolve", OPEN_STORE_TICKET)

    assert result.stdout == f"Resolved ticket {OPEN_STORE_TICKET}\n"
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["status"]["phase"] == "Resolved"
    assert kubectl_column(kubectl, "PHASE") == {OPEN_STORE_TICKET: "Resolved"}


def test_hold_and_unhold_show_in_kubectl(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, OPEN_STORE_TICKET, status={"phase": "Open", "occurrences": 1})

    held = tikv_operator("tickets", "hold", OPEN_STORE_TICKET)

    assert held.stdout == f"Holding ticket {OPEN_STORE_TICKET} - will not auto-resolve\n"
    assert kubectl_column(kubectl, "HELD") == {OPEN_STORE_TICKET: "true"}
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["metadata"]["labels"]["tikvops.io/held"] == "true"
    assert kubectl("get", "operatortickets", "-l", "tikvops.io/held=true", "-o", "name").stdout.strip() == (
        f"operatorticket.tikvops.io/{OPEN_STORE_TICKET}")
    assert tikv_operator("tickets", "hold", OPEN_STORE_TICKET).stdout == (
        f"Ticket {OPEN_STORE_TICKET} is already held\n")

    unheld = tikv_operator("tickets", "unhold", OPEN_STORE_TICKET)

    assert unheld.stdout == (
        f"Ticket {OPEN_STORE_TICKET} unheld - will auto-resolve when the condition clears\n")
    assert kubectl_column(kubectl, "HELD") == {OPEN_STORE_TICKET: "false"}
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["metadata"]["labels"]["tikvops.io/held"] == "false"
    assert tikv_operator("tickets", "unhold", OPEN_STORE_TICKET).stdout == (
        f"Ticket {OPEN_STORE_TICKET} is not held\n")
    # The status was never touched by hold/unhold.
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["status"] == {"phase": "Open", "occurrences": 1}


def test_hold_of_a_resolved_ticket_is_refused(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, RESOLVED_TICKET, invariant="low_disk_space", store="2",
                status={"phase": "Resolved", "resolution": "auto"})

    result = tikv_operator("tickets", "hold", RESOLVED_TICKET, check=False)

    assert_user_error(result, f"Ticket {RESOLVED_TICKET} is resolved and cannot be held; "
                              "a new ticket opens if the condition returns")
    assert ticket_object(kubectl, RESOLVED_TICKET)["spec"]["held"] is False


def test_ack_moves_an_open_ticket_to_acknowledged(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, OPEN_STORE_TICKET, labels={"tikvops.io/phase": "open"}, status={"phase": "Open"})

    result = tikv_operator("tickets", "ack", OPEN_STORE_TICKET)

    assert result.stdout == f"Acknowledged ticket {OPEN_STORE_TICKET}\n"
    assert kubectl_column(kubectl, "PHASE") == {OPEN_STORE_TICKET: "Acknowledged"}
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["metadata"]["labels"]["tikvops.io/phase"] == "acknowledged"
    assert tikv_operator("tickets", "ack", OPEN_STORE_TICKET).stdout == (
        f"Ticket {OPEN_STORE_TICKET} is already acknowledged\n")
    acknowledged = json.loads(tikv_operator("tickets", "list", "--json", "--status", "acknowledged").stdout)
    assert [t["name"] for t in acknowledged] == [OPEN_STORE_TICKET]


def test_ack_of_a_resolved_ticket_is_refused(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, RESOLVED_TICKET, invariant="low_disk_space", store="2", status={"phase": "Resolved"})

    result = tikv_operator("tickets", "ack", RESOLVED_TICKET, check=False)

    assert_user_error(result, f"Ticket {RESOLVED_TICKET} is resolved and cannot be acknowledged")
    assert ticket_object(kubectl, RESOLVED_TICKET)["status"]["phase"] == "Resolved"


@pytest.mark.parametrize("command", ["resolve", "hold", "unhold", "ack"])
def test_a_missing_ticket_is_not_found(tikv_operator: Cli, kubectl: Cli, command: str) -> None:
    make_ticket(kubectl, OPEN_STORE_TICKET, status={"phase": "Open"})

    result = tikv_operator("tickets", command, "prod-store-down-s9-1", check=False)

    assert_user_error(result, "Ticket prod-store-down-s9-1 not found")


def test_an_ambiguous_prefix_names_the_candidates_and_changes_nothing(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, "prod-store-down-s1-1", status={"phase": "Open"})
    make_ticket(kubectl, "prod-store-down-s2-1", store="2", status={"phase": "Open"})

    result = tikv_operator("tickets", "hold", "prod-store", check=False)

    assert_user_error(result, "Ticket ID prod-store is ambiguous; it matches 2 tickets: "
                              "prod-store-down-s1-1, prod-store-down-s2-1")
    assert kubectl_column(kubectl, "HELD") == {"prod-store-down-s1-1": "false", "prod-store-down-s2-1": "false"}
    # A longer prefix is unique again.
    assert tikv_operator("tickets", "hold", "prod-store-down-s2").stdout == (
        "Holding ticket prod-store-down-s2-1 - will not auto-resolve\n")


def test_an_id_is_looked_up_in_the_given_namespace_only(tikv_operator: Cli, kubectl: Cli) -> None:
    make_ticket(kubectl, OPEN_STORE_TICKET, status={"phase": "Open"})

    result = tikv_operator("tickets", "resolve", OPEN_STORE_TICKET, "-n", "default", check=False)

    assert_user_error(result, f"Ticket {OPEN_STORE_TICKET} not found")
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["status"]["phase"] == "Open"


# ------------------------------------------------------------------------------------------- errors


def test_forbidden_is_one_line_and_exit_2(
    platform: PlatformInfo, tikv_operator: Cli, kubectl: Cli, kubeconfig: Kubeconfig, namespace: str,
    service_account_token: str,
) -> None:
    make_ticket(kubectl, OPEN_STORE_TICKET, status={"phase": "Open"})
    as_nobody = cli_with_kubeconfig(platform, kubeconfig(namespace=namespace, token=service_account_token))

    for args in (("list",), ("hold", OPEN_STORE_TICKET), ("resolve", "prod")):
        result = as_nobody("tickets", *args, check=False)

        assert result.returncode == 2, result
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Error from server (Forbidden): "), result.stderr
        assert f"system:serviceaccount:{namespace}:nobody" in result.stderr
    assert ticket_object(kubectl, OPEN_STORE_TICKET)["spec"]["held"] is False


def test_an_unreachable_api_server_is_one_line_and_exit_2(
    platform: PlatformInfo, kubeconfig: Kubeconfig, refused_server: str
) -> None:
    as_user = cli_with_kubeconfig(platform, kubeconfig(namespace="default", server=refused_server))

    for args in (("list",), ("list", "--json"), ("resolve", OPEN_STORE_TICKET)):
        result = as_user("tickets", *args, check=False)

        assert result.returncode == 2, result
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Unable to connect to the server: "), result.stderr
        assert refused_server.removeprefix("https://") in result.stderr


def test_a_missing_kubeconfig_is_one_line_and_exit_2(platform: PlatformInfo, tmp_path: Any) -> None:
    as_user = cli_with_kubeconfig(platform, tmp_path / "absent")

    result = as_user("tickets", "list", check=False)

    assert result.returncode == 2
    assert result.stderr == f"error: no kubeconfig found at {tmp_path / 'absent'} " \
                            "(set KUBECONFIG to the file of your cluster)\n"


# --------------------------------------------------------------------------------------------- show

def test_show_gives_a_symptom_its_cause_and_a_cause_its_diagnosis_and_history(tikv_operator: Cli,
                                                                                kubectl: Cli) -> None:
    """Rules 26 and 27 as a person reads them: the operator's fields, written here as it writes them."""
    make_ticket(kubectl, "prod-store-down-s3-1", store="3",
                labels={"tikvops.io/phase": "diagnosed", "tikvops.io/held": "false"},
                status={"phase": "Diagnosed", "severity": "critical", "occurrences": 4,
                        "firstSeen": "2026-01-02T02:10:00Z", "lastSeen": "2026-01-02T02:12:00Z",
                        "message": "store 3 (tikv-3:20160) is Down: no heartbeat for 120s",
                        "evidence": {"stateName": "Down", "query": "", "address": "tikv-3:20160"},
                        "diagnosis": {"summary": "store 3 is Down since 02:10 UTC: it explains 1 ticket: "
                                                 "region_down_peer (60 regions)",
                                      "explains": [{"ticket": "prod-region-down-peer-1",
                                                    "invariant": "region_down_peer", "rule": "store-down-regions"}],
                                      "rules": ["store-down-regions"], "pd": {"stateName": "Down"},
                                      "runbook": "docs/runbooks/store_down.md",
                                      "diagnosedAt": "2026-01-02T02:11:00Z"}})
    make_ticket(kubectl, "prod-region-down-peer-1", invariant="region_down_peer", store="",
                status={"phase": "Open", "severity": "warning", "occurrences": 2,
                        "firstSeen": "2026-01-02T02:10:30Z", "message": "60 regions with a down peer",
                        "evidence": {"regions": 60, "query": 'pd_regions_status{type="down-peer-region-count"}'},
                        "cause": {"ticket": "prod-store-down-s3-1", "invariant": "store_down", "store": "3",
                                  "rule": "store-down-regions", "since": "2026-01-02T02:11:00Z"}})

    cause = tikv_operator("tickets", "show", "prod-store-down").stdout
    assert "Phase:      Diagnosed, severity critical" in cause
    assert ("Diagnosis:  store 3 is Down since 02:10 UTC: it explains 1 ticket: region_down_peer (60 regions)"
            in cause)
    assert "  explains  prod-region-down-peer-1 (rule store-down-regions)" in cause
    assert "  runbook   docs/runbooks/store_down.md" in cause
    assert "  2026-01-02 02:10:00  first seen" in cause
    assert "  2026-01-02 02:11:00  diagnosis written" in cause
    assert "Chart:      no series available" in cause

    symptom = tikv_operator("tickets", "show", "prod-region-down-peer-1").stdout
    assert ("Cause:      prod-store-down-s3-1 (store_down, store 3; rule store-down-regions), open"
            in symptom)
    assert "Evidence:   regions=60" in symptom
    assert 'its query, for Prometheus\' graph: pd_regions_status{type="down-peer-region-count"}' in symptom
    # `kubectl get -o wide` shows the same link.
    wide = kubectl("get", "operatortickets", "-o", "wide").stdout.splitlines()
    start = wide[0].index("CAUSE")
    assert next(line for line in wide if line.startswith("prod-region-down-peer-1"))[start:].split()[0] == \
        "prod-store-down-s3-1"
