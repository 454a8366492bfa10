"""The TiKVCluster status after a check, the heartbeat line, and when the status is worth a write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tikv_operator.checks.core.cluster_status import heartbeat, needs_write, next_status
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.observation import MetricsObservation, NotContacted, Observation, PDObservation, Store
from tikv_operator.model.cluster_resource import PendingViolation
from tikv_operator.tickets.core.lifecycle import Plan

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
STORES = (Store("1"), Store("2", state_name="Down"), Store("3"))


def observation(at: datetime = T0, pd_ok: bool = True, prom_ok: bool = True) -> Observation:
    pd = PDObservation("http://pd:2379", pd_ok, STORES if pd_ok else (), "" if pd_ok else "connection refused")
    prom = MetricsObservation("http://prom:9090", prom_ok, error="" if prom_ok else "timeout")
    return Observation("basic", at, pd, prom)


def down(store: str = "2") -> Finding:
    return Finding("store_down", store, "violated", "critical", f"store {store} is Down")


def test_degraded_with_open_tickets_and_store_counts() -> None:
    pending = (PendingViolation(invariant="high_latency", store="1", first_seen="2026-11-25T02:59:00Z"),)
    status = next_status(None, observation(), [down()], Plan((), pending, open_tickets=1), generation=3)
    assert (status.health, status.stores_up, status.open_tickets) == ("Degraded", "2/3", 1)
    assert status.pending_violations == list(pending)
    conditions = {c.type: (c.status, c.reason, c.observed_generation) for c in status.conditions}
    assert conditions == {"Ready": ("False", "Degraded", 3), "PDReachable": ("True", "Answering", 3),
                          "PrometheusReachable": ("True", "Answering", 3),
                          "MetricsAvailable": ("True", "SeriesFound", 3),
                          "CredentialsAvailable": ("True", "NotNeeded", 3)}
    assert status.message == "2/3 stores up, 1 open tickets, 1 violations"


def test_unknown_when_pd_cannot_be_read_and_store_counts_are_kept() -> None:
    before = next_status(None, observation(), [], Plan((), ()), generation=1)
    after = next_status(before, observation(T0 + timedelta(seconds=30), pd_ok=False), [], Plan((), ()), 1)
    assert after.health == "Unknown"
    assert after.stores_up == "2/3"  # the last known counts, not 0/0
    assert after.message == "PD does not answer: connection refused"
    pd = next(c for c in after.conditions if c.type == "PDReachable")
    assert (pd.status, pd.last_transition_time) == ("False", "2026-11-25T03:00:30Z")


def test_condition_transition_time_moves_only_with_its_status() -> None:
    first = next_status(None, observation(), [], Plan((), ()), 1)
    later = next_status(first, observation(T0 + timedelta(minutes=5)), [], Plan((), ()), 1)
    assert [c.last_transition_time for c in later.conditions] == ["2026-11-25T03:00:00Z"] * 5


def test_steady_state_writes_once_per_refresh_interval() -> None:
    refresh = timedelta(minutes=1)
    first = next_status(None, observation(), [down()], Plan((), (), open_tickets=1), 1)
    assert needs_write(None, first, refresh)
    same = next_status(first, observation(T0 + timedelta(seconds=30)), [down()], Plan((), (), open_tickets=1), 1)
    assert not needs_write(first, same, refresh)
    old = next_status(first, observation(T0 + timedelta(seconds=60)), [down()], Plan((), (), open_tickets=1), 1)
    assert needs_write(first, old, refresh)
    changed = next_status(first, observation(T0 + timedelta(seconds=5)), [], Plan((), ()), 1)
    assert needs_write(first, changed, refresh)


def test_heartbeat_line_names_the_violations() -> None:
    ok = Finding("pd_unreachable", "", "ok", "critical", "PD answers")
    assert heartbeat([ok], Plan((), ())) == "check complete: 1 invariants, all passing; 0 open tickets"
    unknown = Finding("high_latency", "1", "unknown", "warning", "no data")
    line = heartbeat([ok, down("2"), down("3"), unknown], Plan((), (), open_tickets=2))
    assert line == ("check complete: 3 invariants, 2 violations (store_down@2, store_down@3), 1 unknown; "
                    "2 open tickets")


def blind(store: str, cause: str = "no-data", invariant: str = "low_disk_space") -> Finding:
    return Finding(invariant, store, "unknown", "warning",  # type: ignore[arg-type]
                   f"no tikv_store_size_bytes series in Prometheus for store {store}", cause=cause)  # type: ignore[arg-type]


def test_blind_is_not_healthy_prometheus_answers_but_has_no_series_for_the_stores() -> None:
    status = next_status(None, observation(), [blind("1"), blind("3"), blind("3", invariant="high_latency")],
                         Plan((), ()), 1)
    assert status.health == "Unknown"
    metrics = next(c for c in status.conditions if c.type == "MetricsAvailable")
    assert (metrics.status, metrics.reason) == ("False", "NoSeries")
    assert metrics.message.startswith("high_latency, low_disk_space cannot be judged for stores 1, 3: no tikv_")
    assert status.message is not None
    assert "; blind: high_latency, low_disk_space cannot be judged" in status.message
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "Unknown")


def test_inhibited_and_idle_unknowns_are_not_blind() -> None:
    quiet = [blind("2", cause="inhibited"), blind("1", cause="idle", invariant="high_latency")]
    status = next_status(None, observation(), quiet, Plan((), ()), 1)
    assert status.health == "Healthy"
    metrics = next(c for c in status.conditions if c.type == "MetricsAvailable")
    assert metrics.status == "True"


def test_the_most_actionable_blindness_is_named_first_and_open_tickets_still_say_degraded() -> None:
    found = [blind("1"), blind("2", cause="ambiguous"), blind("3", cause="query-failed", invariant="high_latency")]
    status = next_status(None, observation(), found, Plan((), (), open_tickets=1), 1)
    assert status.health == "Degraded"
    metrics = next(c for c in status.conditions if c.type == "MetricsAvailable")
    assert (metrics.status, metrics.reason) == ("False", "QueryFailed")
    unreachable = next_status(None, observation(prom_ok=False), [], Plan((), ()), 1)
    assert next(c for c in unreachable.conditions if c.type == "MetricsAvailable").reason == "PrometheusNotAnswering"
    no_pd = next_status(None, observation(pd_ok=False), [], Plan((), ()), 1)
    assert next(c for c in no_pd.conditions if c.type == "MetricsAvailable").status == "Unknown"


PD_404 = NotContacted("unreadable", "PD client certificate: Secret tidb/pd-client not found")
PROM_REFUSED = NotContacted("refused", "Prometheus credentials: Secret tidb/prom is not labelled "
                                       "tikvops.io/credentials=true")


def not_contacted(pd: NotContacted | None = None, prom: NotContacted | None = None) -> Observation:
    pd_obs = (PDObservation("https://pd:2379", False, error=pd.reason, not_contacted=pd) if pd
              else PDObservation("https://pd:2379", True, STORES))
    prom_obs = (MetricsObservation("http://prom:9090", False, error=prom.reason, not_contacted=prom) if prom
                else MetricsObservation("http://prom:9090", True))
    return Observation("basic", T0, pd_obs, prom_obs)


def conditions_of(obs: Observation, open_tickets: int = 0) -> dict[str, tuple[str, str, str]]:
    status = next_status(None, obs, [], Plan((), (), open_tickets=open_tickets), 1)
    return {c.type: (c.status, c.reason, c.message) for c in status.conditions}


def test_secrets_that_were_loaded_are_named() -> None:
    obs = Observation("basic", T0, PDObservation("https://pd:2379", True, STORES),
                      MetricsObservation("http://prom:9090", True), secrets=("tidb/pd-client", "tidb/prom"))

    assert conditions_of(obs)["CredentialsAvailable"] == ("True", "Loaded", "loaded Secrets tidb/pd-client, tidb/prom")


def test_secrets_in_use_from_an_older_copy_are_said_so() -> None:
    note = "re-reading Secret tidb/prom fails (HTTP 429); using the copy read 65s ago"
    obs = Observation("basic", T0, PDObservation("https://pd:2379", True, STORES),
                      MetricsObservation("http://prom:9090", True), secrets=("tidb/prom",), stale_secrets=(note,))

    assert conditions_of(obs)["CredentialsAvailable"] == ("True", "LoadedStale", f"loaded Secret tidb/prom; {note}")


def test_an_unreadable_secret_is_its_own_condition_and_pd_was_not_contacted() -> None:
    obs = not_contacted(pd=PD_404)
    status = next_status(None, obs, [], Plan((), ()), 1)
    conditions = {c.type: (c.status, c.reason, c.message) for c in status.conditions}

    assert conditions["CredentialsAvailable"] == ("False", "SecretUnreadable", PD_404.reason)
    assert conditions["PDReachable"] == ("Unknown", "NotContacted", f"not contacted: {PD_404.reason}")
    assert conditions["MetricsAvailable"][:2] == ("Unknown", "PDNotContacted")
    assert status.health == "Unknown"  # blind, not Degraded: nothing is known to be broken
    assert status.message == f"credentials unavailable, PD not contacted: {PD_404.reason}"
    assert status.stores is None


def test_a_refused_secret_wins_the_reason_and_both_problems_are_said() -> None:
    obs = not_contacted(pd=PD_404, prom=PROM_REFUSED)
    status = next_status(None, obs, [], Plan((), ()), 1)
    conditions = {c.type: (c.status, c.reason, c.message) for c in status.conditions}

    assert conditions["CredentialsAvailable"] == ("False", "SecretRefused", f"{PD_404.reason}; {PROM_REFUSED.reason}")
    assert conditions["PrometheusReachable"][:2] == ("Unknown", "NotContacted")
    assert status.message.endswith(f"; credentials unavailable, Prometheus not contacted: {PROM_REFUSED.reason}")


def test_prometheus_not_contacted_leaves_pd_judged_and_metrics_unknown() -> None:
    conditions = conditions_of(not_contacted(prom=PROM_REFUSED))

    assert conditions["PDReachable"][:2] == ("True", "Answering")
    assert conditions["MetricsAvailable"][:2] == ("Unknown", "PrometheusNotContacted")
    assert conditions["CredentialsAvailable"][:2] == ("False", "SecretRefused")


def test_open_tickets_still_make_a_cluster_without_credentials_degraded() -> None:
    status = next_status(None, not_contacted(pd=PD_404), [], Plan((), (), open_tickets=2), 1)

    assert status.health == "Degraded"
