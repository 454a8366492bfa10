"""TiKVClusters from tidb-operator's TidbClusters and TidbMonitors (pingcap.com/v1alpha1): what tidb-operator
already knows, so nobody writes a TiKVCluster by hand or guesses URLs, Secrets, labels or pods.

Conventions (tidb-operator release-1.6, reference/alerting.md section 5):
- PD: `<scheme>://<tc>-pd.<ns>:2379`, `<tc>-pd.<ns>.svc.<clusterDomain>:2379` with a cluster domain, the
  headless `-pd-peer` service across Kubernetes clusters; https exactly when spec.tlsCluster.enabled, with
  the client Secret `<tc>-cluster-client-secret` (ca.crt, tls.crt, tls.key: pd.tlsSecret's keys).
- Prometheus: the TidbMonitor whose spec.clusters lists the TidbCluster serves `<monitor>-prometheus.<ns>:9090`
  and labels every series `tidb_cluster="<ns>-<tc>"`, `instance` = the pod's name. A TidbMonitor in another
  namespace is used only where the TidbCluster allows that namespace (ANNOTATION_ALLOW_MONITORS): anyone who
  can create a TidbMonitor could otherwise list a team's TidbCluster and decide its verdicts.
- Stores: status.tikv.stores maps each store id to its pod.

Discovery owns only the connection fields (CONNECTION); invariants, alerting, timeouts and the rest are the
person's to edit.

tidb-operator v2's Clusters (core.pingcap.com) are read by discovery.core.clusters_v2 into the same Generated |
Skipped description, tagged with their Source, and planned here by the same plan_results: creation, updates,
ownership, opt-out and deletion are one mechanism for both APIs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tikv_operator.model.cluster_resource import TiKVClusterSpec, spec_error
from tikv_operator.model.vocabulary import API_VERSION

TIDB_GROUP, TIDB_VERSION = "pingcap.com", "v1alpha1"
LABEL_DISCOVERED = "tikvops.io/discovered-from"
DISCOVERED_FROM = "tidbcluster"
# On a TidbCluster: "false" keeps discovery away from it (and removes the TiKVCluster it generated).
ANNOTATION_DISCOVERY = "tikvops.io/discovery"
# On a TidbCluster: the other namespaces whose TidbMonitors may be its Prometheus ("monitoring,observability").
ANNOTATION_ALLOW_MONITORS = "tikvops.io/allow-monitors-from"
PD_PORT, PROMETHEUS_PORT = 2379, 9090


@dataclass(frozen=True)
class Source:
    """An API discovery reads clusters from: the owner of the TiKVClusters it generates, and the value of their
    LABEL_DISCOVERED (each source creates, updates and deletes only the TiKVClusters labelled with its own)."""

    kind: str
    api_version: str
    label: str  # LABEL_DISCOVERED's value
    display: str  # how the log, Events and notes name one of its objects: "<display> <ns>/<name>"


TIDBCLUSTER = Source("TidbCluster", f"{TIDB_GROUP}/{TIDB_VERSION}", DISCOVERED_FROM, "TidbCluster")


@dataclass(frozen=True)
class Generated:
    """The TiKVCluster a discovered cluster stands for: its connection fields only."""

    namespace: str
    name: str
    owner_uid: str
    connection: Mapping[str, Any]  # a TiKVCluster spec fragment: pd, prometheus, storePods
    prometheus_from: str  # where the Prometheus came from, for the log
    warning: str = ""  # what the person should know about the result (a sharded or an ignored TidbMonitor)
    source: Source = TIDBCLUSTER
    created: str = ""  # the source object's creationTimestamp: the older of two same-named clusters wins


@dataclass(frozen=True)
class Skipped:
    """A discovered cluster discovery leaves alone; `keep`: an existing generated TiKVCluster stays as it is
    (paused, not bootstrapped), else it is removed (opted out, no TiKV, no PD of its own)."""

    namespace: str
    name: str
    reason: str
    keep: bool
    source: Source = TIDBCLUSTER


@dataclass(frozen=True)
class Conflict:
    """Two sources (a TidbCluster and a v2 Cluster) of one name in one namespace want the same TiKVCluster: the
    one that has it (else the older) keeps it, the other is reported, never written over."""

    namespace: str
    name: str
    loser: Generated
    winner: Source
    message: str


@dataclass(frozen=True)
class Create:
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    namespace: str
    name: str
    patch: Mapping[str, Any]  # a JSON merge patch of spec
    display: str = TIDBCLUSTER.display  # the source, as the log names it


@dataclass(frozen=True)
class Delete:
    namespace: str
    name: str
    reason: str
    display: str = TIDBCLUSTER.display


@dataclass(frozen=True)
class DiscoveryPlan:
    actions: list[Create | Update | Delete] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why clusters were skipped or left alone
    conflicts: list[Conflict] = field(default_factory=list)  # said once as a Warning Event on the loser


# A Kubernetes object's parts, empty when absent (tidb-operator's objects and ours alike).
def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def status_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def pd_url(tc: Mapping[str, Any]) -> str:
    spec, meta = spec_of(tc), meta_of(tc)
    scheme = "https" if (spec.get("tlsCluster") or {}).get("enabled") else "http"
    service = f"{meta['name']}-pd-peer" if spec.get("acrossK8s") else f"{meta['name']}-pd"
    domain = spec.get("clusterDomain") or ""
    host = f"{service}.{meta['namespace']}" + (f".svc.{domain}" if domain else "")
    return f"{scheme}://{host}:{PD_PORT}"


def client_secret(tc: Mapping[str, Any]) -> str | None:
    return f"{meta_of(tc)['name']}-cluster-client-secret" if (spec_of(tc).get("tlsCluster") or {}).get("enabled") \
        else None


def monitor_of(tc: Mapping[str, Any], monitors: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The TidbMonitor whose spec.clusters lists the TidbCluster (a listed cluster's namespace defaults to the
    monitor's), in the TidbCluster's namespace or one it allows; the oldest when several do, so the choice does
    not change from one pass to the next."""
    return next((m for m in _listing(tc, monitors) if _allowed(tc, m)), None)


def refused_monitors(tc: Mapping[str, Any], monitors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The TidbMonitors that list the TidbCluster from a namespace it does not allow: ignored."""
    return [m for m in _listing(tc, monitors) if not _allowed(tc, m)]


def allowed_monitor_namespaces(tc: Mapping[str, Any]) -> frozenset[str]:
    raw = str((meta_of(tc).get("annotations") or {}).get(ANNOTATION_ALLOW_MONITORS, ""))
    return frozenset(ns.strip() for ns in raw.split(",") if ns.strip())


def _allowed(tc: Mapping[str, Any], monitor: Mapping[str, Any]) -> bool:
    namespace = meta_of(monitor).get("namespace")
    return namespace == meta_of(tc)["namespace"] or namespace in allowed_monitor_namespaces(tc)


def _listing(tc: Mapping[str, Any], monitors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    name, namespace = meta_of(tc)["name"], meta_of(tc)["namespace"]
    listing = [m for m in monitors if any(
        c.get("name") == name and (c.get("namespace") or meta_of(m).get("namespace")) == namespace
        for c in spec_of(m).get("clusters") or [] if isinstance(c, Mapping))]
    listing.sort(key=lambda m: (meta_of(m).get("creationTimestamp") or "", meta_of(m).get("namespace", ""),
                                meta_of(m).get("name", "")))
    return listing


def _refusal(refused: list[Mapping[str, Any]]) -> str:
    """How to allow the monitors that were ignored, in the words a person acts on."""
    if not refused:
        return ""
    names = ", ".join(f"TidbMonitor {meta_of(m).get('namespace')}/{meta_of(m).get('name')}" for m in refused)
    namespaces = ",".join(sorted({str(meta_of(m).get("namespace")) for m in refused}))
    return (f"{names} lists it from another namespace and is ignored; to use it, annotate the TidbCluster "
            f"{ANNOTATION_ALLOW_MONITORS}={namespaces}")


def store_pods(tcs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Store id -> pod name from status.tikv.stores of a TidbCluster and of those joining its PD."""
    pods: dict[str, str] = {}
    for tc in tcs:
        stores = (status_of(tc).get("tikv") or {}).get("stores") or {}
        for key, store in stores.items() if isinstance(stores, Mapping) else ():
            if isinstance(store, Mapping) and store.get("podName"):
                pods[str(store.get("id") or key)] = str(store["podName"])
    return pods


def _joins(tc: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the TidbCluster whose PD a heterogeneous TidbCluster joins."""
    cluster = spec_of(tc).get("cluster") or {}
    if spec_of(tc).get("pd") or not cluster.get("name"):
        return None
    return cluster.get("namespace") or meta_of(tc)["namespace"], cluster["name"]


def generate(tc: Mapping[str, Any], tcs: Iterable[Mapping[str, Any]], monitors: Iterable[Mapping[str, Any]],
             default_prometheus: str) -> Generated | Skipped:
    meta, spec, status = meta_of(tc), spec_of(tc), status_of(tc)
    namespace, name = meta["namespace"], meta["name"]

    def skipped(reason: str, keep: bool = False) -> Skipped:
        return Skipped(namespace, name, reason, keep)

    if str((meta.get("annotations") or {}).get(ANNOTATION_DISCOVERY, "")).lower() == "false":
        return skipped(f"annotated {ANNOTATION_DISCOVERY}=false")
    if not spec.get("tikv"):
        return skipped("it has no TiKV")
    joined = _joins(tc)
    if joined is not None:
        return skipped(f"it joins the PD of {joined[0]}/{joined[1]}, whose TiKVCluster checks its stores")
    if not spec.get("pd"):
        return skipped("it has no PD of its own (spec.pd) and joins no TidbCluster")
    if spec.get("paused"):
        return skipped("it is paused (spec.paused)", keep=True)
    if not (status.get("tikv") or {}).get("bootStrapped"):
        return skipped("its TiKV is not bootstrapped yet (status.tikv.bootStrapped)", keep=True)

    monitor = monitor_of(tc, monitors)
    refusal = _refusal(refused_monitors(tc, monitors))
    warning = ""
    if monitor is not None:
        prometheus = {"url": f"http://{meta_of(monitor)['name']}-prometheus.{meta_of(monitor)['namespace']}:"
                             f"{PROMETHEUS_PORT}",
                      "labelMatchers": {"tidb_cluster": f"{namespace}-{name}"}}
        source = f"TidbMonitor {meta_of(monitor)['namespace']}/{meta_of(monitor)['name']}"
        shards = spec_of(monitor).get("shards") or 1
        if isinstance(shards, int) and shards > 1:
            warning = (f"{source} has {shards} shards: only shard 0's Prometheus is asked, so the stores the "
                       "other shards scrape have no series (MetricsAvailable False, NoSeries)")
    elif default_prometheus:
        # Not a TidbMonitor's: the scrape labels are whatever that Prometheus gives (kube-prometheus: namespace
        # and pod), so the pods of status.tikv.stores tell this cluster's series from others'.
        prometheus = {"url": default_prometheus, "labelMatchers": {"namespace": namespace}}
        source = "--default-prometheus-url"
    else:
        missing = f"no usable TidbMonitor lists it ({refusal})" if refusal else "no TidbMonitor lists it"
        return skipped(f"{missing} and the operator has no --default-prometheus-url", keep=True)

    joining = [t for t in tcs if _joins(t) == (namespace, name)]
    pd: dict[str, Any] = {"url": pd_url(tc)}
    secret = client_secret(tc)
    pd["tlsSecret"] = {"name": secret} if secret else None
    connection = {"pd": pd, "prometheus": prometheus, "storePods": store_pods([tc, *joining])}
    try:
        TiKVClusterSpec.model_validate(_without_none(connection))
    except ValidationError as error:
        return skipped(f"the TiKVCluster it would make is not valid: {spec_error(error)}")
    warning = "; ".join(w for w in (warning, refusal) if w)
    return Generated(namespace, name, str(meta.get("uid", "")), connection, source, warning,
                     created=str(meta.get("creationTimestamp") or ""))


def manifest(generated: Generated) -> dict[str, Any]:
    spec = _without_none(generated.connection)
    return {
        "apiVersion": API_VERSION,
        "kind": "TiKVCluster",
        "metadata": {
            "name": generated.name,
            "namespace": generated.namespace,
            "labels": {LABEL_DISCOVERED: generated.source.label},
            "ownerReferences": [{
                "apiVersion": generated.source.api_version, "kind": generated.source.kind, "name": generated.name,
                "uid": generated.owner_uid, "blockOwnerDeletion": False,
            }],
        },
        "spec": spec,
    }


def connection_patch(existing_spec: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that makes the connection fields of `existing_spec` equal to `desired` and touches
    nothing else; {} when they already are. Keys of maps that discovery owns whole (labelMatchers,
    storePods) that are no longer desired are removed (null)."""
    return _diff(existing_spec, desired, owned_whole={"labelMatchers", "storePods"})


def _diff(existing: Mapping[str, Any], desired: Mapping[str, Any], owned_whole: set[str],
          key: str = "") -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for name, want in desired.items():
        have = existing.get(name)
        if isinstance(want, Mapping):
            have_map = have if isinstance(have, Mapping) else {}
            if name in owned_whole:
                changed = {k: v for k, v in want.items() if have_map.get(k) != v}
                changed |= {k: None for k in have_map if k not in want}
                if changed:
                    patch[name] = changed
            else:
                sub = _diff(have_map, want, owned_whole, name)
                if sub:
                    patch[name] = sub
        elif want is None:
            if have is not None:
                patch[name] = None
        elif have != want:
            patch[name] = want
    return patch


def _without_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def plan_discovery(tcs: list[Mapping[str, Any]], monitors: list[Mapping[str, Any]],
                   tikvclusters: list[Mapping[str, Any]], default_prometheus: str,
                   others: Iterable[Generated | Skipped] = (),
                   listed: Iterable[Source] = (TIDBCLUSTER,)) -> DiscoveryPlan:
    """What to create, update and delete so that the generated TiKVClusters follow the TidbClusters (and the
    clusters of other sources, already read into `others`). `listed`: the sources whose objects were listed in
    this pass; a TiKVCluster of a source that was not (its CRD absent, its list forbidden) is left as it is."""
    results: list[Generated | Skipped] = [generate(tc, tcs, monitors, default_prometheus) for tc in tcs]
    return plan_results([*results, *others], tikvclusters, frozenset(listed))


def _label(obj: Mapping[str, Any]) -> str:
    return str((meta_of(obj).get("labels") or {}).get(LABEL_DISCOVERED, ""))


def _keeps(holder: str, results: list[Generated | Skipped], listed: frozenset[Source]) -> bool:
    """Whether the source `holder` keeps the TiKVCluster it has: a source not listed in this pass is assumed to."""
    if holder not in {s.label for s in listed}:
        return True
    return any(r.source.label == holder and (isinstance(r, Generated) or r.keep) for r in results)


def plan_results(results: Iterable[Generated | Skipped], tikvclusters: list[Mapping[str, Any]],
                 listed: frozenset[Source]) -> DiscoveryPlan:
    """The plan for discovered clusters of every source.

    A TiKVCluster discovery did not generate (no LABEL_DISCOVERED) is never touched, even when its name is a
    discovered cluster's: a person wrote it. A source touches only the TiKVClusters labelled with its own label:
    when a TidbCluster and a v2 Cluster of one name share a namespace, the one whose TiKVCluster exists keeps it
    (else the older of the two, a TidbCluster on a tie) and the other is a Conflict, reported and not written."""
    existing = {(meta_of(t).get("namespace", ""), meta_of(t).get("name", "")): t for t in tikvclusters}
    labels = {source.label for source in listed}
    plan = DiscoveryPlan()
    wanted: set[tuple[str, str]] = set()
    skip_reasons: dict[tuple[str, str, str], str] = {}
    by_key: dict[tuple[str, str], list[Generated | Skipped]] = {}
    for result in results:
        by_key.setdefault((result.namespace, result.name), []).append(result)
    for key in sorted(by_key):
        current = existing.get(key)
        owner = _label(current) if current is not None else ""
        candidates = [r for r in by_key[key] if isinstance(r, Generated)]
        # The source that may write this TiKVCluster: the one it is labelled with, else the oldest candidate.
        holder = owner or min(((r.created or "~", r.source != TIDBCLUSTER, r.source.label) for r in candidates),
                              default=("", False, ""))[2]
        for result in sorted(by_key[key], key=lambda r: r.source.label):
            who = f"{result.source.display} {key[0]}/{key[1]}"
            ours = current is not None and owner == result.source.label
            if isinstance(result, Skipped):
                plan.notes.append(f"{who}: skipped: {result.reason}")
                skip_reasons[(*key, result.source.label)] = result.reason
                if result.keep and ours:
                    wanted.add(key)
                continue
            if result.warning:
                plan.notes.append(f"{who}: {result.warning}")
            if current is not None and not owner:
                wanted.add(key)
                plan.notes.append(f"{who}: a TiKVCluster of that name exists and was not generated by discovery: "
                                  "left as it is")
                continue
            if result.source.label != holder:
                winner = next((s for s in (*listed, *(r.source for r in by_key[key])) if s.label == holder),
                              Source("", "", holder, f"a {LABEL_DISCOVERED}={holder} source"))
                if not _keeps(holder, by_key[key], listed):
                    # Its source lets it go (deleted, opted out): this one takes the name once it is gone.
                    plan.notes.append(f"{who}: waits for TiKVCluster {key[0]}/{key[1]} of the {winner.display} "
                                      "of the same name to be deleted")
                    continue
                message = (f"{who}: TiKVCluster {key[0]}/{key[1]} is generated from the {winner.display} of the "
                           "same name in this namespace and is not written over; rename one of the two, or "
                           f"annotate the one not to check {ANNOTATION_DISCOVERY}=false")
                plan.notes.append(message)
                plan.conflicts.append(Conflict(key[0], key[1], result, winner, message))
                continue
            wanted.add(key)
            if current is None:
                plan.actions.append(Create(manifest(result)))
            else:
                patch = connection_patch(spec_of(current), result.connection)
                if patch:
                    plan.actions.append(Update(key[0], key[1], patch, result.source.display))
    for key, current in sorted(existing.items()):
        label = _label(current)
        if label in labels and key not in wanted:
            source = next(s for s in listed if s.label == label)
            reason = skip_reasons.get((*key, label)) or f"its {source.display} is gone"
            plan.actions.append(Delete(key[0], key[1], reason, source.display))
    return plan
