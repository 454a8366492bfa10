"""The fault soak (bench/soak), short: 4 simulated clusters (every deployment convention), two operator replicas
and about 2 minutes of mixed faults from a fixed seed on the platform the test run already has, judged by
the oracle (bench/soak/oracle.py), with every kind of hostile tenant beside them (bench/soak/tenants.py).
`make soak` runs the long one."""

from __future__ import annotations

from collections import Counter

import pytest
from bench.soak.oracle import GUARANTEES
from bench.soak.run import Options, soak
from bench.soak.schedule import Rates
from bench.soak.tenants import HOSTILE_KINDS
from harness.platform import PlatformInfo

SEED = 1919
# Denser than the long run's lanes, so that 110 s hold some of everything (seed 1919 plans every kind the test asserts).
SMOKE_RATES = Rates(store_gap_s=25.0, pd_gap_s=40.0, regions_gap_s=60.0, rolling_gap_s=90.0, person_gap_s=4.0,
                    scale_in_share=0.5)


@pytest.mark.timeout(480)
def test_a_short_soak_of_mixed_faults_keeps_every_guarantee(platform: PlatformInfo, tikvops_crds: None) -> None:
    outcome = soak(platform, Options(duration_s=110, seed=SEED, clusters=4, rates=SMOKE_RATES, settle_s=25))
    verdict = outcome.verdict
    assert not verdict.violations, "\n".join(f"{v.guarantee}: {v.detail}" for v in verdict.violations)

    # A smoke that injected nothing proves nothing: faults of several kinds, the platform's disruptions and
    # people's actions really happened, and the oracle had things to check.
    injected = Counter(f.kind for f in outcome.record.faults if not f.error)
    assert {"stop-store", "disk", "latency", "pd-error", "regions"} <= set(injected), injected
    assert {"operator-sigkill", "operator-sigterm", "apiserver-pause", "prometheus-down"} <= set(injected), injected
    assert {"pd-leader-change", "rolling-restart", "scale-in"} & set(injected), injected
    done = Counter(a.action for a in outcome.record.actions if a.ok)
    assert {"hold", "ack", "resolve"} <= set(done), done
    for guarantee in ("one_open_per_identity", "no_auto_resolve_while_present", "every_fault_detected",
                      "people_reflected", "no_unexplained_ticket", "alertmanager_matches"):
        assert verdict.checks[guarantee] > 0, (guarantee, verdict.checks)
    assert set(verdict.checks) == set(GUARANTEES)

    # The hostile tenants were there, looked at, and the process they shared with the clusters judged.
    assert sorted(outcome.record.hostile.values()) == sorted(HOSTILE_KINDS)
    for guarantee in ("operator_never_crashed", "memory_under_limit", "hostile_contained"):
        assert verdict.checks[guarantee] > 0, (guarantee, verdict.checks)
