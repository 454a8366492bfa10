"""RBAC is exactly the table in tests/unit/chart/chart.py: sufficient, minimal, no wildcards; the Lease of
leader election in the release's namespace only; discovery's rules only with discovery.tidbClusters, and
wherever the operator's other rules go."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.chart import (
    CREDENTIAL_RULES,
    DISCOVERY,
    DISCOVERY_RULES,
    FULLNAME,
    LEADER_ELECTION_ROLE,
    LEADER_ELECTION_RULES,
    LEASE_ID,
    OPERATOR_RULES,
    RELEASE_NAMESPACE,
    SCOPED,
    V2_KINDS,
    of_kind,
    one,
    render,
    rule_set,
)

WATCHED = ["tikv-a", "tikv-b"]
SUBJECT = [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}]


@pytest.fixture(scope="module")
def all_namespaces(helm_bin: str) -> list[dict[str, Any]]:
    return render(helm_bin)


@pytest.fixture(scope="module")
def namespaced(helm_bin: str) -> list[dict[str, Any]]:
    return render(helm_bin, {"watchNamespaces": WATCHED})


@pytest.fixture(scope="module")
def all_namespaces_discovery(helm_bin: str) -> list[dict[str, Any]]:
    return render(helm_bin, DISCOVERY)


@pytest.fixture(scope="module")
def namespaced_discovery(helm_bin: str) -> list[dict[str, Any]]:
    return render(helm_bin, {"watchNamespaces": WATCHED, **DISCOVERY})


MODES = ["all_namespaces", "namespaced", "all_namespaces_discovery", "namespaced_discovery"]


def test_all_namespaces_is_one_cluster_role_with_exactly_the_operator_rules(
    all_namespaces: list[dict[str, Any]],
) -> None:
    role = one(all_namespaces, "ClusterRole")
    assert role["metadata"]["name"] == SCOPED
    assert rule_set(role["rules"]) == OPERATOR_RULES
    binding = one(all_namespaces, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SCOPED}
    assert binding["subjects"] == SUBJECT
    # The only Role: leader election's (the Lease), in the release's namespace.
    assert [r["metadata"]["name"] for r in of_kind(all_namespaces, "Role")] == [LEADER_ELECTION_ROLE]
    assert [b["metadata"]["name"] for b in of_kind(all_namespaces, "RoleBinding")] == [LEADER_ELECTION_ROLE]
    account = one(all_namespaces, "ServiceAccount")
    assert (account["metadata"]["name"], account["metadata"]["namespace"]) == (FULLNAME, RELEASE_NAMESPACE)


def test_namespaced_mode_has_a_role_per_watched_namespace_and_nothing_cluster_wide(
    namespaced: list[dict[str, Any]],
) -> None:
    assert of_kind(namespaced, "ClusterRole") == []
    assert of_kind(namespaced, "ClusterRoleBinding") == []
    roles = {r["metadata"]["namespace"]: r for r in of_kind(namespaced, "Role") if r["metadata"]["name"] == SCOPED}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(namespaced, "RoleBinding")
                if b["metadata"]["name"] == SCOPED}
    assert sorted(roles) == sorted(bindings) == WATCHED  # nothing in the release's own namespace
    for namespace in WATCHED:
        assert rule_set(roles[namespace]["rules"]) == OPERATOR_RULES
        assert bindings[namespace]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": roles[namespace]["metadata"]["name"],
        }
        assert bindings[namespace]["subjects"] == SUBJECT


@pytest.mark.parametrize("mode", MODES)
def test_no_wildcards_no_resource_names_no_escalation(mode: str, request: pytest.FixtureRequest) -> None:
    docs: list[dict[str, Any]] = request.getfixturevalue(mode)
    for kind in ("ClusterRole", "Role"):
        for role in of_kind(docs, kind):
            lease_role = role["metadata"]["name"] == LEADER_ELECTION_ROLE
            for rule in role["rules"]:
                # No nonResourceURLs; resourceNames only where they narrow the Lease rule.
                allowed_keys = {"apiGroups", "resources", "verbs"} | ({"resourceNames"} if lease_role else set())
                assert set(rule) <= allowed_keys, rule
                assert {"apiGroups", "resources", "verbs"} <= set(rule), rule
                for key in ("apiGroups", "resources", "verbs"):
                    assert not any("*" in item for item in rule[key]), rule
            dangerous = {"escalate", "bind", "impersonate", "deletecollection"} | (set() if lease_role else {"update"})
            assert not dangerous & {verb for _, _, verb in rule_set(role["rules"])}
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    granted = {triple for role in roles for triple in rule_set(role["rules"])}
    assert {verb for _, resource, verb in granted if resource == "secrets"} <= {"get"}
    untouchable = {"pods", "deployments", "roles", "clusterroles", "customresourcedefinitions", "namespaces"}
    assert not {triple for triple in granted if triple[1] in untouchable}
    # The operator posts core v1 Events; a grant of the events.k8s.io API nothing uses is a privilege too many.
    assert not {triple for triple in granted if triple[0] == "events.k8s.io"}


def test_discovery_adds_its_rules_to_the_cluster_role_in_an_all_namespaces_install(
    all_namespaces: list[dict[str, Any]], all_namespaces_discovery: list[dict[str, Any]],
) -> None:
    assert not OPERATOR_RULES & DISCOVERY_RULES  # each row of the table is granted by one switch only
    role = one(all_namespaces_discovery, "ClusterRole")
    assert role["metadata"]["name"] == SCOPED
    assert rule_set(role["rules"]) == OPERATOR_RULES | DISCOVERY_RULES
    # tidb-operator's objects: read only, and nothing of pingcap.com but TidbClusters and TidbMonitors, nothing of
    # core.pingcap.com (v2) but what discovery reads: Clusters and the PD, TiKV and TiFlash objects of them.
    pingcap = [rule for rule in role["rules"] if {"pingcap.com", "core.pingcap.com"} & set(rule["apiGroups"])]
    assert pingcap == [{"apiGroups": ["pingcap.com"], "resources": ["tidbclusters", "tidbmonitors"],
                        "verbs": ["get", "list", "watch"]},
                       {"apiGroups": ["core.pingcap.com"],
                        "resources": list(V2_KINDS),
                        "verbs": ["get", "list", "watch"]}]
    # Nothing else changes: the same objects, and every other role the same.
    assert kinds_and_names(all_namespaces_discovery) == kinds_and_names(all_namespaces)
    assert without_operator_rules(all_namespaces_discovery) == without_operator_rules(all_namespaces)


def test_discovery_adds_its_rules_to_each_watched_namespace_role_and_nothing_cluster_wide(
    namespaced: list[dict[str, Any]], namespaced_discovery: list[dict[str, Any]],
) -> None:
    assert of_kind(namespaced_discovery, "ClusterRole") == []
    assert of_kind(namespaced_discovery, "ClusterRoleBinding") == []
    roles = {r["metadata"]["namespace"]: r for r in of_kind(namespaced_discovery, "Role")
             if r["metadata"]["name"] == SCOPED}
    assert sorted(roles) == WATCHED
    for namespace in WATCHED:
        assert rule_set(roles[namespace]["rules"]) == OPERATOR_RULES | DISCOVERY_RULES
    assert kinds_and_names(namespaced_discovery) == kinds_and_names(namespaced)
    assert without_operator_rules(namespaced_discovery) == without_operator_rules(namespaced)


@pytest.mark.parametrize("values", [
    {},
    {"discovery": {"tidbClusters": False, "prometheusURL": "http://prometheus.monitoring:9090", "interval": "1m"}},
    {"discovery": None},  # `helm upgrade --reuse-values` from chart 0.2.0, which has no discovery key
])
def test_without_discovery_nothing_of_it_is_granted(helm_bin: str, values: dict[str, Any]) -> None:
    for scope in ({}, {"watchNamespaces": WATCHED}):
        docs = render(helm_bin, {**values, **scope})
        granted = {triple for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
                   for triple in rule_set(role["rules"])}
        assert not granted & DISCOVERY_RULES
        assert not [group for group, _, _ in granted if group in ("pingcap.com", "core.pingcap.com")]


def kinds_and_names(docs: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs)


def without_operator_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The RBAC objects, less the rules of the operator's own role(s) (the ones discovery extends)."""
    kept = []
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role") and doc["metadata"]["name"] == SCOPED:
            doc = {**doc, "rules": None}
        if doc["kind"] in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"):
            kept.append(doc)
    return kept


def test_two_releases_in_two_namespaces_do_not_share_cluster_scoped_names(helm_bin: str) -> None:
    first = render(helm_bin, namespace="ops-one")
    second = render(helm_bin, namespace="ops-two")
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert one(first, kind)["metadata"]["name"] != one(second, kind)["metadata"]["name"]


def credential_roles(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["namespace"]: r for r in of_kind(docs, "Role")
            if r["metadata"]["name"] == f"{SCOPED}-credentials"}


def test_no_cluster_role_grants_secrets_and_the_default_install_reads_none(
    all_namespaces: list[dict[str, Any]],
) -> None:
    for role in of_kind(all_namespaces, "ClusterRole"):
        assert not [rule for rule in role["rules"] if "secrets" in rule["resources"]], role["rules"]
    assert credential_roles(all_namespaces) == {}


@pytest.mark.parametrize(("values", "expected"), [
    ({"credentialNamespaces": ["tidb-a", "tidb-b"]}, ["tidb-a", "tidb-b"]),
    ({"watchNamespaces": WATCHED}, WATCHED),
    ({"watchNamespaces": WATCHED, "credentialNamespaces": ["tikv-a"]}, ["tikv-a"]),
])
def test_secrets_are_readable_only_in_the_credential_namespaces(
    helm_bin: str, values: dict[str, Any], expected: list[str],
) -> None:
    docs = render(helm_bin, values)
    roles = credential_roles(docs)
    assert sorted(roles) == expected
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(docs, "RoleBinding")
                if b["metadata"]["name"] == f"{SCOPED}-credentials"}
    assert sorted(bindings) == expected
    for namespace in expected:
        assert rule_set(roles[namespace]["rules"]) == CREDENTIAL_RULES
        assert bindings[namespace]["subjects"] == SUBJECT
        assert bindings[namespace]["roleRef"]["name"] == f"{SCOPED}-credentials"
    for role in of_kind(docs, "ClusterRole"):
        assert not [rule for rule in role["rules"] if "secrets" in rule["resources"]]


def leader_election(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    roles = [r for r in of_kind(docs, "Role") if r["metadata"]["name"] == LEADER_ELECTION_ROLE]
    bindings = [b for b in of_kind(docs, "RoleBinding") if b["metadata"]["name"] == LEADER_ELECTION_ROLE]
    return roles, bindings


@pytest.mark.parametrize("mode", MODES)
def test_the_lease_role_is_in_the_release_namespace_only(mode: str, request: pytest.FixtureRequest) -> None:
    docs: list[dict[str, Any]] = request.getfixturevalue(mode)
    (role,), (binding,) = leader_election(docs)
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert rule_set(role["rules"]) == LEADER_ELECTION_RULES  # get, create, update: no list, watch, patch, delete
    # get and update reach the one Lease the operator contends for; create cannot name it in advance.
    by_verb = {verb: rule.get("resourceNames") for rule in role["rules"] for verb in rule["verbs"]}
    assert by_verb == {"create": None, "get": [LEASE_ID], "update": [LEASE_ID]}
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEADER_ELECTION_ROLE}
    assert binding["subjects"] == SUBJECT
    # No other role grants anything on Leases.
    for other in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        if other is not role:
            assert not [rule for rule in other["rules"] if "leases" in rule["resources"]]


def test_the_lease_role_follows_the_lease_id(helm_bin: str) -> None:
    (role,), _ = leader_election(render(helm_bin, {"leaderElection": {"id": "ops.tikv-leader"}}))
    assert {tuple(rule.get("resourceNames", [])) for rule in role["rules"]} == {(), ("ops.tikv-leader",)}


def test_no_lease_role_without_leader_election(helm_bin: str) -> None:
    docs = render(helm_bin, {"replicas": 1, "leaderElection": {"enabled": False}})
    assert leader_election(docs) == ([], [])
    assert not [rule for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role") for rule in role["rules"]
                if "leases" in rule["resources"]]
