"""TiKVCluster: which TiKV cluster to watch, how, and what the operator last saw of it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, create_model, field_validator

from tikv_operator.checks.core.catalogue import ENTRIES
from tikv_operator.checks.core.queries import DEFAULT_RATE_WINDOW
from tikv_operator.model.durations import AtLeastASecond, Duration
from tikv_operator.model.vocabulary import INVARIANT_NAME_MAX, INVARIANT_NAME_PATTERN, Health, Severity
from tikv_operator.model.wire import SecretName, Timestamp, WireModel

# No userinfo (user:pass@ would be copied into logs, Events and tickets; credentials belong in Secrets), no
# query string and no fragment (the operator appends its own paths and parameters).
URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$"
# The cluster's name is the value of the tikvops.io/cluster label on its tickets: at most 63 characters.
CLUSTER_NAME_MAX = 63
LABEL_NAME_PATTERN = r"[a-zA-Z_][a-zA-Z0-9_]*"
# A TidbCluster's stores, with room for scale-outs and replaced stores.
STORE_PODS_MAX = 10000


def label_names(keys: dict[str, str], field: str) -> dict[str, str]:
    """The map, if its keys are Prometheus label names; the CRD cannot check map keys without CEL
    (Kubernetes 1.20), so the operator refuses the spec instead."""
    bad = sorted(key for key in keys if not re.fullmatch(LABEL_NAME_PATTERN, key))
    if bad:
        raise ValueError(f"{field} keys must be Prometheus label names ([a-zA-Z_][a-zA-Z0-9_]*): {bad}")
    return keys


class SecretRef(WireModel):
    name: SecretName


class PDSpec(WireModel):
    """Where PD's HTTP API answers."""

    url: str = Field(
        pattern=URL_PATTERN,
        description="PD client URL, http or https, e.g. http://basic-pd.tidb:2379 (tidb-operator's <tc>-pd service).",
    )
    tls_secret: SecretRef | None = Field(
        None,
        description="Secret with the client certificate for an https PD: keys ca.crt, tls.crt, tls.key "
        "(tidb-operator names it <tc>-cluster-client-secret).",
    )
    timeout: Duration = Field("5s", description="Timeout of one PD request.")


class PrometheusSpec(WireModel):
    """The Prometheus that scrapes this cluster's TiKV and PD metrics."""

    url: str = Field(
        pattern=URL_PATTERN,
        description="Prometheus base URL, e.g. http://basic-prometheus.tidb:9090 (tidb-operator's TidbMonitor).",
    )
    auth_secret: SecretRef | None = Field(
        None,
        description="Secret with credentials for the query API: key `token` (bearer), "
        "or keys `username` and `password` (basic auth).",
    )
    label_matchers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra exact-match label matchers added to every query, to pick this cluster's series "
        'out of a shared Prometheus, e.g. {tidb_cluster: "tidb-basic"}.',
    )
    timeout: Duration = Field("10s", description="Timeout of one query.")
    rate_window: Duration = Field(
        DEFAULT_RATE_WINDOW,
        description="Range of rate() in the latency query. Keep it at least 4 scrape intervals: 2m suits "
        "kube-prometheus' 30s default, 1m tiup's and TidbMonitor's 15s.",
    )

    # Rather than send Prometheus a selector it rejects on every check.
    @field_validator("label_matchers")
    @classmethod
    def _keys_are_label_names(cls, matchers: dict[str, str]) -> dict[str, str]:
        return label_names(matchers, "labelMatchers")


AlertmanagerURL = Annotated[str, Field(pattern=URL_PATTERN, max_length=2048,
                                        description="An Alertmanager base URL, http or https.")]
# The label names the operator sets on every alert of a ticket (alerts.core.delivery.alert_labels).
RESERVED_ALERT_LABELS = ("alertname", "namespace", "tikv_cluster", "store", "severity", "ticket")


class AlertmanagerSpec(WireModel):
    """Where this cluster's tickets are sent as alerts (Alertmanager API v2)."""

    enabled: bool = Field(True, description="false sends this cluster's tickets nowhere, whatever the operator's "
                          "default Alertmanagers are.")
    urls: list[AlertmanagerURL] = Field(
        default_factory=list, max_length=10,
        description="Every replica of the Alertmanager (not a load-balanced Service: each must get every "
        "alert), e.g. http://alertmanager-main-0.alertmanager-operated.monitoring:9093. Empty: the operator's "
        "default (--alertmanager-url, Helm value alertmanager.urls).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra static labels on every alert of this cluster, e.g. {team: storage} for routing. "
        "They cannot replace alertname, namespace, tikv_cluster, store, severity or ticket.",
    )
    tls_secret: SecretRef | None = Field(
        None, description="Secret with keys ca.crt, tls.crt, tls.key for an https Alertmanager (labelled "
        "tikvops.io/credentials=true, like every Secret the operator sends).",
    )
    auth_secret: SecretRef | None = Field(
        None, description="Secret with key `token` (bearer) or keys `username` and `password` (basic auth), "
        "labelled tikvops.io/credentials=true.",
    )
    timeout: Duration = Field("10s", description="Timeout of one request to an Alertmanager.")

    @field_validator("labels")
    @classmethod
    def _labels_are_label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        label_names(labels, "alertmanager.labels")  # Alertmanager 0.25 answers 400 to any other name
        reserved = sorted(set(labels) & set(RESERVED_ALERT_LABELS))
        if reserved:
            raise ValueError(f"alertmanager.labels cannot set {reserved}: the operator sets them")
        return labels


class InvariantOverride(WireModel):
    """Per-cluster changes to one invariant's defaults; unset fields keep the default."""

    enabled: bool | None = Field(None, description="false turns the invariant off for this cluster.")
    threshold: float | None = Field(
        None, ge=0, description="The invariant's limit, in the unit of its rule (seconds, ratio, count)."
    )
    grace_period: Duration | None = Field(
        None, description="How long a violation must last before a ticket opens."
    )
    severity: Severity | None = Field(None, description="Severity of the tickets it opens.")
    keep_firing_for: Duration | None = Field(
        None, description="How long an open ticket stays open after the condition clears (PrometheusRule's "
        "keep_firing_for): a condition back within it keeps the same ticket. Default 0s.",
    )
    window: Duration | None = Field(
        None, description="Look-back of invariants that count events within a window (store_restarted, "
        "write_stall, critical_error, pd_leader_flapping) or take a rate (the p99 invariants: default "
        "spec.prometheus.rateWindow). Ignored by the others.",
    )


def _overrides_model() -> type[WireModel]:
    """One optional override per built-in invariant, each described by its catalogue row, so that
    `kubectl explain tikvcluster.spec.invariants` lists the catalogue."""
    fields: dict[str, Any] = {
        name: (InvariantOverride | None, Field(None, alias=name, description=f"{name}: {entry.describe()}"))
        for name, entry in ENTRIES.items()
    }
    return create_model(  # type: ignore[no-any-return]
        "InvariantOverrides", __base__=WireModel,
        __doc__="Overrides keyed by invariant name; every built-in invariant is on unless disabled here.",
        **fields,
    )


InvariantOverrides = _overrides_model()

CUSTOM_INVARIANTS_MAX = 50
# The placeholder a custom expression writes where the cluster's labelMatchers go, inside a selector's
# braces: `rate(tikv_foo_total{$matchers}[5m])`, `tikv_bar{type="x",$matchers}`.
MATCHERS_PLACEHOLDER = "$matchers"


class CustomInvariant(WireModel):
    """An invariant of your own, in PrometheusRule's vocabulary: a non-empty result is a violation."""

    name: str = Field(
        pattern=INVARIANT_NAME_PATTERN, max_length=INVARIANT_NAME_MAX,
        description="Its name on tickets (tikvops.io/invariant) and alerts (alertname): lower case, digits and _, "
        "not a built-in invariant's name.",
    )
    expr: str = Field(
        min_length=1, max_length=4096,
        description="PromQL. Every series of the result is a violation; an empty result is ok; a query error is "
        "unknown (shown in the CustomInvariants condition with Prometheus' error). Write $matchers inside a "
        "selector's braces where the cluster's spec.prometheus.labelMatchers belong, e.g. "
        "'rate(tikv_channel_full_total{$matchers}[5m]) > 0'; it expands to nothing when there are none.",
    )
    scope: Literal["store", "cluster"] = Field(
        "cluster", description="store: the result is mapped to stores by its pod label, else its instance label, "
        "as the built-in invariants are (keep both: sum by (instance, pod) ..., which works under tiup, "
        "TidbMonitor and kube-prometheus); one ticket per store. "
        "cluster: one ticket for the cluster.",
    )
    for_: Duration = Field("0s", alias="for", description="Grace period: how long the result must be non-empty "
                           "before a ticket opens.")
    keep_firing_for: Duration = Field("0s", description="How long the ticket stays open after the result empties.")
    severity: Severity = Field("warning", description="Severity of its tickets.")
    summary: str = Field("", max_length=1024, description="What it means, in words; starts the ticket's message.")
    enabled: bool = Field(True, description="false turns it off.")

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, name: str) -> str:
        if name in ENTRIES:
            raise ValueError(f"{name} is a built-in invariant: configure it under spec.invariants.{name}")
        return name


class FlappingSpec(WireModel):
    """When is an identity flapping: it opened `count` tickets within `window`."""

    window: Duration = Field("10m", description="How far back to count tickets of the same identity.")
    count: int = Field(3, ge=2, le=100, description="Tickets within the window that mark the newest one flapping.")


class TicketPolicy(WireModel):
    """How often ticket counters are written and how long resolved tickets are kept."""

    refresh_interval: AtLeastASecond = Field(
        "1m",
        description="At most one write per ticket per interval for counters (occurrences, lastSeen); "
        "transitions are written at once. At least 1s; below the check interval it means every check.",
    )
    resolved_retention: Duration = Field(
        "168h", description="Resolved tickets are deleted this long after they resolved."
    )


class TiKVClusterSpec(WireModel):
    """A TiKV cluster to watch."""

    pd: PDSpec
    prometheus: PrometheusSpec
    # No schema default: an unset interval follows the operator's --default-interval (Helm value
    # checkInterval), so one setting changes it for every cluster that did not choose its own.
    interval: AtLeastASecond | None = Field(
        None,
        description="Time between two checks, at least 1s; unset means the operator's default (30s unless "
        "configured).",
    )
    paused: bool = Field(False, description="true stops checks; tickets stay as they are.")
    # `default: {}` in the CRD makes the API server fill in the nested defaults when the whole object
    # is omitted, so `kubectl get -o yaml` shows the values in force.
    invariants: InvariantOverrides = Field(  # type: ignore[valid-type]
        default_factory=InvariantOverrides, description="Per-invariant overrides, keyed by invariant name. Every "
        "built-in invariant is listed with its scope, source, rule and defaults (kubectl explain "
        "tikvcluster.spec.invariants).",
        json_schema_extra={"default": {}},
    )
    custom_invariants: list[CustomInvariant] = Field(
        default_factory=list, max_length=CUSTOM_INVARIANTS_MAX,
        description="Invariants of your own (PromQL). All of them are asked in one query per check.",
    )
    flapping: FlappingSpec = Field(default_factory=FlappingSpec, json_schema_extra={"default": {}})
    alertmanager: AlertmanagerSpec | None = Field(
        None, description="Alertmanager delivery of this cluster's tickets; unset: the operator's default.")
    tickets: TicketPolicy = Field(default_factory=TicketPolicy, json_schema_extra={"default": {}})
    store_pods: dict[str, Annotated[str, Field(max_length=253)]] = Field(
        default_factory=dict, max_length=STORE_PODS_MAX,
        description="Store id -> the pod that runs it, as tidb-operator's TidbCluster status.tikv.stores says "
        "(discovery writes it). A listed store's series are the ones whose pod label, else instance label, is "
        "that pod; stores not listed are matched by the deployment's naming convention.",
    )

    @field_validator("store_pods")
    @classmethod
    def _store_ids(cls, pods: dict[str, str]) -> dict[str, str]:
        bad = sorted(key for key in pods if not key.isdigit())
        if bad:
            raise ValueError(f"storePods keys must be PD store ids (digits): {bad}")
        return pods

    # The API server cannot check that names in a list are unique without CEL (Kubernetes 1.20).
    @field_validator("custom_invariants")
    @classmethod
    def _names_unique(cls, customs: list[CustomInvariant]) -> list[CustomInvariant]:
        names = [c.name for c in customs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"customInvariants names must be unique: {repeated}")
        return customs


class Condition(WireModel):
    """metav1.Condition."""

    type: str = Field(description="Ready, PDReachable, PrometheusReachable, MetricsAvailable, CredentialsAvailable, "
                      "AlertsDelivered, CustomInvariants")
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(None, ge=0)
    last_transition_time: Timestamp
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field("", max_length=32768)


class StoreCounts(WireModel):
    up: int = Field(0, ge=0)
    total: int = Field(0, ge=0)


class PendingViolation(WireModel):
    """A violation still inside its grace period; kept here so the grace period survives restarts."""

    invariant: str
    store: str = ""
    first_seen: Timestamp


# Restart sightings kept per store: more than any sensible store_restarted limit (the verdict needs only
# `limit` of them), few enough that a crash loop cannot grow the status without bound.
RESTARTS_REMEMBERED_MAX = 100


class RememberedStore(WireModel):
    """What earlier checks saw of one store that PD lists."""

    id: str = Field(max_length=20)
    start_timestamp: int | None = Field(None, ge=0, description="PD's start_timestamp of the process last seen.")
    restarts: list[Timestamp] = Field(default_factory=list, max_length=RESTARTS_REMEMBERED_MAX,
                                      description="When each restart within store_restarted's window happened.")
    led: bool | None = Field(None, description="True: held Raft leaders since its process started; False: held "
                             "none, watched since it started; absent: not known (store_leader_lost is unknown).")


class StoreMemoryStatus(WireModel):
    """What store_restarted and store_leader_lost need from earlier checks, so that an operator restart or a
    leader handover goes on from it (rule 24)."""

    since: Timestamp = Field(description="When this memory began: restarts before it were not seen.")
    at: Timestamp = Field(description="The last check in which PD answered (written with the memory's changes).")
    stores: list[RememberedStore] = Field(default_factory=list, max_length=STORE_PODS_MAX)


class TiKVClusterStatus(WireModel):
    observed_generation: int | None = Field(None, ge=0)
    health: Health | None = Field(None, description="Healthy, Degraded (open tickets) or Unknown (no data).")
    conditions: list[Condition] = Field(default_factory=list)
    last_check_time: Timestamp | None = None
    stores: StoreCounts | None = None
    stores_up: str | None = Field(None, description='Stores up out of total, e.g. "2/3" (a printer column).')
    open_tickets: int | None = Field(None, ge=0)
    pending_violations: list[PendingViolation] = Field(default_factory=list)
    store_memory: StoreMemoryStatus | None = None
    message: str | None = None


def spec_error(error: ValidationError) -> str:
    """Which field of the spec is wrong and why, in one line (pydantic's loc is snake_case Python names)."""
    first = error.errors()[0]
    where = ".".join(["spec", *(str(part) for part in first["loc"])])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
