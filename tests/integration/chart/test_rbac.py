"""The chart's RBAC, proven with a token minted for its ServiceAccount (TokenRequest API):
`kubectl auth can-i` answers for the whole table, real requests made with the token, and a kopf operator
that runs with nothing but that token. Both the all-namespaces and the namespaced install, the Lease
of leader election in the release's namespace only, and discovery's rows (discovery.tidbClusters) wherever
the table goes, and nowhere without it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.kube import Cli, eventually

from tests.integration.chart.serviceaccount import (
    as_account,
    as_can_i_args,
    can_i_all,
    token_kubeconfig,
)
from tests.unit.chart.chart import CHART, DISCOVERY_RULES, LEASE_ID, OPERATOR_RULES

RELEASE = "tikv-operator"
ACCOUNT = "tikv-operator"  # the release name contains the chart name, so objects are named after it
PROBE = Path(__file__).with_name("kopf_rbac_probe.py")
KOPF = Path(sys.executable).with_name("kopf")

# What the operator must never be able to do, in any namespace (verb, resource[, extra args]).
DENIED_EVERYWHERE = [
    ("list", "secrets"), ("watch", "secrets"), ("create", "secrets"), ("update", "secrets"), ("delete", "secrets"),
    ("delete", "pods"), ("create", "pods"), ("get", "pods"), ("create", "pods", "--subresource=exec"),
    ("update", "tikvclusters.tikvops.io"), ("delete", "tikvclusters.tikvops.io"),
    ("create", "tikvclusters.tikvops.io"), ("update", "operatortickets.tikvops.io"),
    ("deletecollection", "operatortickets.tikvops.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"), ("patch", "deployments.apps"),
    ("create", "serviceaccounts", "--subresource=token"),
    ("create", "events.events.k8s.io"),  # Events go through the core API only
]
DENIED_CLUSTER_WIDE = [
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "namespaces"), ("watch", "namespaces"), ("get", "namespaces"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("get", "nodes"), ("create", "namespaces"), ("delete", "namespaces"),
]

# Discovery (discovery.tidbClusters=true): DISCOVERY_RULES too, wherever the table goes (`kubectl auth can-i`
# needs no TidbCluster CRD to answer). What it never grants, even then: tidb-operator's objects are read only,
# and only TidbClusters and TidbMonitors (v1), Clusters, PDGroups, TiKVGroups, TiKVs and TiFlashes (v2).
DISCOVERY_CHECKS = [(verb, *as_can_i_args(group, resource)) for group, resource, verb in sorted(DISCOVERY_RULES)]
DENIED_WITH_DISCOVERY = [
    *[check for check in DENIED_EVERYWHERE if check not in DISCOVERY_CHECKS],
    ("deletecollection", "tikvclusters.tikvops.io"),
    *[(verb, "tidbclusters.pingcap.com") for verb in ("create", "update", "patch", "delete", "deletecollection")],
    *[(verb, "tidbmonitors.pingcap.com") for verb in ("create", "update", "patch", "delete")],
    ("get", "tidbclusters.pingcap.com", "--subresource=status"),
    ("patch", "tidbclusters.pingcap.com", "--subresource=status"),
    ("update", "tidbclusters.pingcap.com", "--subresource=finalizers"),
    *[("list", f"{resource}.pingcap.com") for resource in ("backups", "tidbinitializers", "tidbngmonitorings",
                                                           "dmclusters", "tidbdashboards")],
    # tidb-operator v2: read only, and only its PD and storage kinds (no TiDB kinds).
    *[(verb, "clusters.core.pingcap.com") for verb in ("create", "update", "patch", "delete", "deletecollection")],
    *[(verb, "tikvs.core.pingcap.com") for verb in ("create", "patch", "delete")],
    ("patch", "clusters.core.pingcap.com", "--subresource=status"),
    *[("list", f"{resource}.core.pingcap.com") for resource in ("tidbgroups", "tidbs")],
]

# Leader election, in the release's namespace: get and update the operator's own Lease by name, create a
# Lease (create cannot be limited to a name). Nothing else on Leases, and nothing at all elsewhere.
LEASES = "leases.coordination.k8s.io"
LEASE_GRANTED = [("get", f"{LEASES}/{LEASE_ID}"), ("update", f"{LEASES}/{LEASE_ID}"), ("create", LEASES)]
LEASE_DENIED = [
    ("get", LEASES), ("update", LEASES),  # any Lease: only the operator's own, by name
    ("get", f"{LEASES}/kube-controller-manager"), ("update", f"{LEASES}/kube-controller-manager"),
    ("list", LEASES), ("watch", LEASES), ("patch", f"{LEASES}/{LEASE_ID}"), ("delete", f"{LEASES}/{LEASE_ID}"),
    ("deletecollection", LEASES),
]


def review(account: Cli, verb: str, resource: str, *scope: str) -> bool:
    """What `kubectl auth can-i` asks, as a SelfSubjectAccessReview of our own. kubectl maps the resource
    through the API server's discovery and, for one nobody serves (tidb-operator's, without its CRDs), asks
    about a resource literally named "tidbclusters.pingcap.com" in the core group, which is always "no"."""
    name, _, group = resource.partition(".")
    attributes = {"verb": verb, "group": group, "resource": name, "namespace": "default"}
    args = iter(scope)
    for arg in args:
        if arg.startswith("--subresource="):
            attributes["subresource"] = arg.partition("=")[2]
        elif arg == "--namespace":
            attributes["namespace"] = next(args)
        elif arg == "--all-namespaces":
            attributes["namespace"] = ""
        else:
            raise ValueError(f"unexpected can-i argument {arg!r}")
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    status = json.loads(account("create", "-f", "-", "-o", "json", input=json.dumps(body)).stdout)["status"]
    return bool(status.get("allowed"))


def ask_all(account: Cli, questions: Sequence[Sequence[str]]) -> list[bool]:
    """`kubectl auth can-i` answers (can_i_all), but pingcap.com questions go to review()."""
    reviewed = [i for i, (_, resource, *_) in enumerate(questions) if resource.endswith(".pingcap.com")]
    answers = can_i_all(account, [q for i, q in enumerate(questions) if i not in reviewed])
    with ThreadPoolExecutor(max_workers=8) as pool:
        by_review = dict(zip(reviewed, pool.map(lambda i: review(account, *questions[i]), reviewed), strict=True))
    rest = iter(answers)
    return [by_review[i] if i in by_review else next(rest) for i in range(len(questions))]


@dataclass(frozen=True)
class Install:
    namespace: str  # the release's
    watched: list[str]  # [] = all namespaces
    kubeconfig: Path
    account: Cli  # kubectl with only the ServiceAccount's token


@pytest.fixture
def extra_namespaces(kubectl_admin: Cli, namespace: str) -> Iterator[list[str]]:
    names = [f"{namespace}-wa", f"{namespace}-wb", f"{namespace}-un"]
    for name in names:
        kubectl_admin("create", "namespace", name)
    yield names
    for name in names:
        kubectl_admin("delete", "namespace", name, "--wait=false", check=False)


def install(helm: Cli, kubectl_admin: Cli, namespace: str, watched: list[str], tmp_path: Path,
            *settings: str) -> Install:
    args = ["install", RELEASE, str(CHART)]
    if watched:
        args += ["--set", "watchNamespaces={" + ",".join(watched) + "}"]
    for setting in settings:
        args += ["--set", setting]
    helm(*args)
    kubeconfig = token_kubeconfig(kubectl_admin, namespace, ACCOUNT, tmp_path / "operator.kubeconfig")
    return Install(namespace, watched, kubeconfig, as_account(kubectl_admin, kubeconfig))


@pytest.fixture
def all_namespaces(helm: Cli, kubectl_admin: Cli, namespace: str, tikvops_crds: None, tmp_path: Path,
                   ) -> Iterator[Install]:
    yield install(helm, kubectl_admin, namespace, [], tmp_path)
    helm("uninstall", RELEASE, check=False)


@pytest.fixture
def namespaced(helm: Cli, kubectl_admin: Cli, namespace: str, extra_namespaces: list[str], tikvops_crds: None,
               tmp_path: Path) -> Iterator[Install]:
    yield install(helm, kubectl_admin, namespace, extra_namespaces[:2], tmp_path)
    helm("uninstall", RELEASE, check=False)


@pytest.fixture
def all_namespaces_discovery(helm: Cli, kubectl_admin: Cli, namespace: str, tikvops_crds: None, tmp_path: Path,
                             ) -> Iterator[Install]:
    yield install(helm, kubectl_admin, namespace, [], tmp_path, "discovery.tidbClusters=true")
    helm("uninstall", RELEASE, check=False)


@pytest.fixture
def namespaced_discovery(helm: Cli, kubectl_admin: Cli, namespace: str, extra_namespaces: list[str],
                         tikvops_crds: None, tmp_path: Path) -> Iterator[Install]:
    yield install(helm, kubectl_admin, namespace, extra_namespaces[:2], tmp_path, "discovery.tidbClusters=true")
    helm("uninstall", RELEASE, check=False)


@pytest.fixture
def without_leader_election(helm: Cli, kubectl_admin: Cli, namespace: str, tikvops_crds: None, tmp_path: Path,
                            ) -> Iterator[Install]:
    yield install(helm, kubectl_admin, namespace, [], tmp_path, "leaderElection.enabled=false,replicas=1")
    helm("uninstall", RELEASE, check=False)


def assert_lease_rules(account: Cli, release_namespace: str, elsewhere: list[str]) -> None:
    """The Lease rows of the table: granted in the release's namespace, nowhere else."""
    here = ["--namespace", release_namespace]
    answers = ask_all(account, [(*check, *here) for check in LEASE_GRANTED])
    refused = [check for check, answer in zip(LEASE_GRANTED, answers, strict=True) if not answer]
    assert refused == [], f"the operator's token may not {refused} in its own namespace"
    assert_denied(account, LEASE_DENIED, here)
    for other in elsewhere:
        assert_denied(account, [*LEASE_GRANTED, *LEASE_DENIED], ["--namespace", other])
    assert_denied(account, [*LEASE_GRANTED, *LEASE_DENIED], ["--all-namespaces"])


def assert_operator_rules(account: Cli, scope: list[str], allowed: bool,
                          table: frozenset[tuple[str, str, str]] = OPERATOR_RULES) -> None:
    rules = sorted(table)
    answers = ask_all(account, [(verb, *as_can_i_args(group, resource), *scope) for group, resource, verb in rules])
    wrong = [rule for rule, answer in zip(rules, answers, strict=True) if answer is not allowed]
    assert wrong == [], f"can-i {scope} answered {not allowed} for {wrong}, expected {allowed}"


def assert_denied(account: Cli, checks: list[tuple[str, ...]], scope: list[str]) -> None:
    answers = ask_all(account, [(*check, *scope) for check in checks])
    granted = [check for check, answer in zip(checks, answers, strict=True) if answer]
    assert granted == [], f"the operator's token may {granted} {scope}"


def test_all_namespaces_install_grants_exactly_the_table(all_namespaces: Install, kubectl_admin: Cli) -> None:
    account = all_namespaces.account
    whoami = account("auth", "can-i", "--list", "--namespace", "default").stdout
    assert "operatortickets.tikvops.io" in whoami
    for scope in (["--namespace", all_namespaces.namespace], ["--namespace", "default"], ["--all-namespaces"]):
        assert_operator_rules(account, scope, allowed=True)
        assert_denied(account, DENIED_EVERYWHERE, scope)
        # Discovery is off: neither TidbClusters nor TidbMonitors, nor creating a TiKVCluster.
        assert_operator_rules(account, scope, allowed=False, table=DISCOVERY_RULES)
        assert_denied(account, DENIED_WITH_DISCOVERY, scope)
    assert_denied(account, DENIED_CLUSTER_WIDE, [])
    assert_lease_rules(account, all_namespaces.namespace, ["default", "kube-system"])


def test_namespaced_install_grants_the_table_only_in_the_watched_namespaces(
    namespaced: Install, extra_namespaces: list[str],
) -> None:
    account = namespaced.account
    unwatched = [namespaced.namespace, extra_namespaces[2], "default", "kube-system"]
    for watched in namespaced.watched:
        assert_operator_rules(account, ["--namespace", watched], allowed=True)
        assert_denied(account, DENIED_EVERYWHERE, ["--namespace", watched])
        assert_operator_rules(account, ["--namespace", watched], allowed=False, table=DISCOVERY_RULES)
    for other in unwatched:
        assert_operator_rules(account, ["--namespace", other], allowed=False, table=OPERATOR_RULES | DISCOVERY_RULES)
    assert_operator_rules(account, ["--all-namespaces"], allowed=False, table=OPERATOR_RULES | DISCOVERY_RULES)
    assert_denied(account, [*DENIED_CLUSTER_WIDE, ("watch", "secrets", "--all-namespaces")], [])
    # The Lease lives in the release's namespace, watched or not; the watched namespaces get none.
    assert_lease_rules(account, namespaced.namespace, [*namespaced.watched, extra_namespaces[2], "default"])


def test_discovery_all_namespaces_grants_its_rows_in_every_namespace(all_namespaces_discovery: Install) -> None:
    account, namespace = all_namespaces_discovery.account, all_namespaces_discovery.namespace
    # In any namespace, one that does not even exist included.
    for scope in (["--namespace", namespace], ["--namespace", "default"], ["--namespace", "tidb-anywhere"],
                  ["--all-namespaces"]):
        assert ask_all(account, [("list", "tidbclusters.pingcap.com", *scope),
                                   ("create", "tikvclusters.tikvops.io", *scope)]) == [True, True], scope
        assert_operator_rules(account, scope, allowed=True, table=OPERATOR_RULES | DISCOVERY_RULES)
        assert_denied(account, DENIED_WITH_DISCOVERY, scope)
    # The rest is as without discovery: nothing cluster-wide beyond the table, the Lease in the release's namespace.
    assert_denied(account, DENIED_CLUSTER_WIDE, [])
    assert_lease_rules(account, namespace, ["default", "kube-system"])


def test_the_access_review_answers_as_kubectl_does(all_namespaces_discovery: Install) -> None:
    """review() stands in for `kubectl auth can-i` where kubectl cannot map the resource: where it can, the
    two agree, yes and no alike."""
    account, namespace = all_namespaces_discovery.account, all_namespaces_discovery.namespace
    questions = [
        *[(verb, *as_can_i_args(group, resource), "--namespace", namespace) for group, resource, verb in
          sorted(OPERATOR_RULES | DISCOVERY_RULES) if not group.endswith("pingcap.com")],
        ("create", "tikvclusters.tikvops.io", "--all-namespaces"),
        ("update", "tikvclusters.tikvops.io", "--namespace", namespace),
        ("update", "tikvclusters.tikvops.io", "--subresource=status", "--namespace", namespace),
        ("get", "secrets", "--namespace", "kube-system"), ("list", "namespaces", "--all-namespaces"),
    ]
    expected = can_i_all(account, questions)
    assert True in expected
    assert False in expected
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda question: review(account, *question), questions)) == expected


def test_discovery_namespaced_grants_its_rows_only_in_the_watched_namespaces(
    namespaced_discovery: Install, extra_namespaces: list[str],
) -> None:
    account = namespaced_discovery.account
    for watched in namespaced_discovery.watched:
        scope = ["--namespace", watched]
        assert ask_all(account, [("list", "tidbclusters.pingcap.com", *scope),
                                   ("create", "tikvclusters.tikvops.io", *scope)]) == [True, True], scope
        assert_operator_rules(account, scope, allowed=True, table=OPERATOR_RULES | DISCOVERY_RULES)
        assert_denied(account, DENIED_WITH_DISCOVERY, scope)
    for other in (namespaced_discovery.namespace, extra_namespaces[2], "default", "kube-system"):
        assert_operator_rules(account, ["--namespace", other], allowed=False, table=OPERATOR_RULES | DISCOVERY_RULES)
    assert_operator_rules(account, ["--all-namespaces"], allowed=False, table=OPERATOR_RULES | DISCOVERY_RULES)
    assert_denied(account, DENIED_CLUSTER_WIDE, [])
    assert_lease_rules(account, namespaced_discovery.namespace,
                       [*namespaced_discovery.watched, extra_namespaces[2], "default"])


def list_tidbclusters(account: Cli, namespace: str | None) -> str:
    """A real list of TidbClusters with the token: no CRD serves them here, so an authorized request gets a
    404 (NotFound) and a refused one a 403 (Forbidden) -- the API server authorizes before it routes."""
    path = f"/apis/pingcap.com/v1alpha1/namespaces/{namespace}/tidbclusters" if namespace else \
        "/apis/pingcap.com/v1alpha1/tidbclusters"
    result = account("get", "--raw", path, check=False)
    assert result.returncode != 0, result.stdout
    if "(NotFound)" in result.stderr:
        return "allowed"
    assert forbidden(result), result.stderr
    return "forbidden"


def create_and_delete_cluster(account: Cli, namespace: str) -> bool:
    """Create a TiKVCluster with the token and delete it, as discovery does; False when refused."""
    ns = account.in_namespace(namespace)
    created = ns("create", "-f", "-", input=probed_cluster("generated"), check=False)
    if created.returncode != 0:
        assert forbidden(created), created.stderr
        return False
    ns("delete", "tikvcluster", "generated")  # no operator runs, so no finalizer holds it
    return True


def test_discovery_requests_made_with_the_token(all_namespaces_discovery: Install, extra_namespaces: list[str],
                                                kubectl_admin: Cli) -> None:
    account = all_namespaces_discovery.account
    for namespace in (all_namespaces_discovery.namespace, extra_namespaces[2]):
        assert list_tidbclusters(account, namespace) == "allowed"
        assert create_and_delete_cluster(account, namespace)
    assert list_tidbclusters(account, None) == "allowed"
    # RBAC cannot tell a generated TiKVCluster from another: the operator itself deletes only those labelled
    # tikvops.io/discovered-from. Still no update (a PUT), only patch.
    kubectl_admin.in_namespace(extra_namespaces[2])("create", "-f", "-", input=probed_cluster("theirs"))
    assert forbidden(account.in_namespace(extra_namespaces[2])(
        "replace", "-f", "-", input=probed_cluster("theirs"), check=False))
    account.in_namespace(extra_namespaces[2])("delete", "tikvcluster", "theirs")


def test_discovery_requests_made_with_the_token_namespaced(namespaced_discovery: Install,
                                                           extra_namespaces: list[str]) -> None:
    account = namespaced_discovery.account
    watched, unwatched = namespaced_discovery.watched[0], extra_namespaces[2]
    assert list_tidbclusters(account, watched) == "allowed"
    assert create_and_delete_cluster(account, watched)
    for namespace in (unwatched, namespaced_discovery.namespace):
        assert list_tidbclusters(account, namespace) == "forbidden"
        assert not create_and_delete_cluster(account, namespace)
    assert list_tidbclusters(account, None) == "forbidden"


def test_without_discovery_the_token_neither_lists_tidbclusters_nor_creates_tikvclusters(
    all_namespaces: Install,
) -> None:
    account, namespace = all_namespaces.account, all_namespaces.namespace
    assert ask_all(account, [("list", "tidbclusters.pingcap.com", "--namespace", namespace),
                               ("create", "tikvclusters.tikvops.io", "--namespace", namespace)]) == [False, False]
    assert list_tidbclusters(account, namespace) == "forbidden"
    assert list_tidbclusters(account, None) == "forbidden"
    assert not create_and_delete_cluster(account, namespace)


def test_without_leader_election_nothing_is_granted_on_leases(without_leader_election: Install) -> None:
    account, namespace = without_leader_election.account, without_leader_election.namespace
    assert_denied(account, [*LEASE_GRANTED, *LEASE_DENIED], ["--namespace", namespace])
    assert_operator_rules(account, ["--namespace", namespace], allowed=True)  # the rest is unchanged


def make_secret(kubectl_admin: Cli, namespace: str) -> None:
    kubectl_admin("create", "secret", "generic", "pd-tls", "--namespace", namespace, "--from-literal=ca.crt=x")


TICKET = {
    "apiVersion": "tikvops.io/v1alpha1",
    "kind": "OperatorTicket",
    "metadata": {"name": "basic-store-down-s1-1"},
    "spec": {"cluster": "basic", "invariant": "store_down", "store": "1"},
}


def forbidden(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "forbidden" in result.stderr.lower()


def exercise_ticket_lifecycle(account: Cli, namespace: str) -> None:
    """The requests the operator makes on tickets, made for real with its token."""
    ns = account.in_namespace(namespace)
    ns("create", "-f", "-", input=json.dumps(TICKET))
    name = TICKET["metadata"]["name"]
    ns("patch", "operatorticket", name, "--type=merge", "-p", '{"spec":{"held":true}}')
    ns("patch", "operatorticket", name, "--subresource=status", "--type=merge", "-p",
       '{"status":{"phase":"Resolved","resolution":"manual"}}')
    got = ns.json("get", "operatorticket", name)
    assert (got["spec"]["held"], got["status"]["phase"]) == (True, "Resolved")
    assert [t["metadata"]["name"] for t in ns.json("get", "operatortickets")["items"]] == [name]
    assert forbidden(ns("replace", "-f", "-", input=json.dumps(got), check=False))  # update is not granted
    ns("delete", "operatorticket", name)


def test_requests_made_with_the_token_all_namespaces(all_namespaces: Install, kubectl_admin: Cli, helm: Cli) -> None:
    account, namespace = all_namespaces.account, all_namespaces.namespace
    exercise_ticket_lifecycle(account, namespace)
    make_secret(kubectl_admin, namespace)
    # The default install reads no Secret anywhere: a ClusterRole with secrets get would reach kube-system.
    for where in (namespace, "kube-system", "default"):
        assert forbidden(account("get", "secret", "pd-tls", "--namespace", where, check=False))
    assert not ask_all(account, [("get", "secrets", "--namespace", "kube-system")])[0]
    helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", f"credentialNamespaces={{{namespace}}}")
    assert account("get", "secret", "pd-tls", "--namespace", namespace, "-o", "name").stdout.strip()
    assert forbidden(account("get", "secrets", "--namespace", namespace, check=False))  # get by name only
    assert forbidden(account("get", "secret", "pd-tls", "--namespace", "kube-system", check=False))
    assert forbidden(account("delete", "pod", "anything", "--namespace", namespace, check=False))
    assert forbidden(account("label", "crd", "tikvclusters.tikvops.io", "edited=yes", check=False))


def lease(name: str, holder: str) -> str:
    return json.dumps({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    })


def test_lease_requests_made_with_the_token(all_namespaces: Install, kubectl_admin: Cli,
                                            extra_namespaces: list[str]) -> None:
    """What leader election does, for real: create the Lease, read it, take it over (update, a PUT)."""
    ns = all_namespaces.account.in_namespace(all_namespaces.namespace)
    ns("create", "-f", "-", input=lease(LEASE_ID, "tikv-operator-a"))
    got = ns.json("get", "lease", LEASE_ID)
    got["spec"]["holderIdentity"] = "tikv-operator-b"
    ns("replace", "-f", "-", input=json.dumps(got))
    assert ns.json("get", "lease", LEASE_ID)["spec"]["holderIdentity"] == "tikv-operator-b"
    assert forbidden(ns("patch", "lease", LEASE_ID, "--type=merge", "-p", '{"spec":{"holderIdentity":"x"}}',
                        check=False))
    assert forbidden(ns("delete", "lease", LEASE_ID, check=False))
    assert forbidden(ns("get", "leases", check=False))  # no list
    # Another Lease of the namespace (another controller's) can be neither read nor taken over.
    kubectl_admin.in_namespace(all_namespaces.namespace)("create", "-f", "-", input=lease("someone-else", "them"))
    assert forbidden(ns("get", "lease", "someone-else", check=False))
    # Nothing in any other namespace, not even the Lease's name.
    other = all_namespaces.account.in_namespace(extra_namespaces[2])
    assert forbidden(other("create", "-f", "-", input=lease(LEASE_ID, "tikv-operator-a"), check=False))
    assert forbidden(other("get", "lease", LEASE_ID, check=False))


def test_requests_made_with_the_token_namespaced(namespaced: Install, kubectl_admin: Cli,
                                                 extra_namespaces: list[str]) -> None:
    account = namespaced.account
    watched, unwatched = namespaced.watched[0], extra_namespaces[2]
    exercise_ticket_lifecycle(account, watched)
    for namespace in (watched, unwatched):
        make_secret(kubectl_admin, namespace)
    assert account("get", "secret", "pd-tls", "--namespace", watched, "-o", "name").stdout.strip()
    assert forbidden(account("get", "secret", "pd-tls", "--namespace", unwatched, check=False))
    assert forbidden(account("get", "secret", "pd-tls", "--namespace", namespaced.namespace, check=False))
    assert forbidden(account("create", "-f", "-", "--namespace", unwatched, input=json.dumps(TICKET), check=False))
    assert forbidden(account("get", "tikvclusters", "--all-namespaces", check=False))
    assert forbidden(account("delete", "pod", "anything", "--namespace", watched, check=False))
    assert forbidden(account("label", "crd", "tikvclusters.tikvops.io", "edited=yes", check=False))


# ---------------------------------------------------------------------------------------------------
# kopf itself, with nothing but the token


def probed_cluster(name: str) -> str:
    return json.dumps({
        "apiVersion": "tikvops.io/v1alpha1",
        "kind": "TiKVCluster",
        "metadata": {"name": name, "labels": {"tikvops.io/rbac-probe": "yes"}},
        "spec": {"pd": {"url": "http://127.0.0.1:9"}, "prometheus": {"url": "http://127.0.0.1:9"}},
    })


@pytest.fixture
def run_kopf(kubectl_admin: Cli, tmp_path: Path) -> Iterator[Callable[..., Path]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(kubeconfig: Path, *scope: str, scanning: str = "disabled",
              ready: str = "Starting the watch-stream for tikvclusters") -> Path:
        log = tmp_path / f"kopf-{len(started) + 1}.log"
        env = {**kubectl_admin.env, "KUBECONFIG": str(kubeconfig), "RBAC_PROBE_SCANNING": scanning}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(KOPF), "run", "--standalone", "--verbose", *scope, str(PROBE)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        started.append((proc, log))
        eventually(lambda: ready in log.read_text() or proc.poll() is not None, timeout=30,
                   what=f"kopf to log {ready!r}")
        assert proc.poll() is None, log.read_text()
        return log

    yield start
    for proc, _ in started:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_kopf_handles_a_cluster(kubectl_admin: Cli, namespace: str, name: str = "probed") -> None:
    ns = kubectl_admin.in_namespace(namespace)
    ns("apply", "-f", "-", input=probed_cluster(name))

    def handled() -> bool:
        body = ns.json("get", "tikvcluster", name)
        return ("tikvops.io/rbac-probe" in body["metadata"].get("finalizers", [])  # patch
                and body.get("status", {}).get("message") == "seen by the RBAC probe")  # status patch

    eventually(handled, timeout=30, what=f"kopf to handle {namespace}/{name}")
    events = ns.json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    assert "RBACProbe" in {e["reason"] for e in events}  # events create
    ns("delete", "tikvcluster", name, "--timeout=30s")  # kopf removes its finalizer


# An HTTP 403 in kopf's log, not the milliseconds of a timestamp such as "09:38:27,403".
HTTP_403 = re.compile(r"(?<![\d,.:])403(?!\d)")


def assert_no_permission_trouble(log: Path) -> None:
    text = log.read_text()
    for sign in ("Forbidden", "Not enough permissions", "Traceback", "[ERROR", "[WARNING"):
        assert sign not in text, f"kopf logged {sign!r}:\n{text[-4000:]}"
    status = HTTP_403.search(text)
    assert status is None, f"kopf logged a 403:\n{text[max(0, status.start() - 2000):status.end() + 2000]}"


def test_kopf_runs_with_only_the_token_all_namespaces(all_namespaces: Install, run_kopf, kubectl_admin: Cli) -> None:
    log = run_kopf(all_namespaces.kubeconfig, "--all-namespaces")
    assert_kopf_handles_a_cluster(kubectl_admin, all_namespaces.namespace)
    assert "watch-stream for tikvclusters.v1alpha1.tikvops.io cluster-wide" in log.read_text()
    assert_no_permission_trouble(log)


def test_kopf_runs_with_only_the_token_namespaced(namespaced: Install, run_kopf, kubectl_admin: Cli,
                                                  extra_namespaces: list[str]) -> None:
    scope = [f"--namespace={ns}" for ns in namespaced.watched]
    log = run_kopf(namespaced.kubeconfig, *scope)
    for watched in namespaced.watched:
        assert_kopf_handles_a_cluster(kubectl_admin, watched)
    # A cluster in a namespace it was not given stays untouched.
    unwatched = kubectl_admin.in_namespace(extra_namespaces[2])
    unwatched("apply", "-f", "-", input=probed_cluster("elsewhere"))
    assert_kopf_handles_a_cluster(kubectl_admin, namespaced.watched[0], "later")  # kopf had time to see it
    assert "finalizers" not in unwatched.json("get", "tikvcluster", "elsewhere")["metadata"]
    assert_no_permission_trouble(log)


def test_kopf_scanning_is_why_no_cluster_role_is_needed(namespaced: Install, run_kopf) -> None:
    """The counterfactual: kopf's default scanning lists Namespaces cluster-wide, which the namespaced
    install does not grant (kopf then retries for about a minute before it serves anything). The operator
    disables scanning; if it ever stops doing so, this chart needs a ClusterRole again."""
    scope = [f"--namespace={ns}" for ns in namespaced.watched]
    log = run_kopf(namespaced.kubeconfig, *scope, scanning="enabled", ready='cannot list resource "namespaces"')
    assert "Starting the watch-stream for tikvclusters" not in log.read_text()
