"""A cluster's settings: the spec validated and worked out once per spec (durations as numbers, invariant
configs, queries, lifecycle policy), and a spec the operator cannot use said with one message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tikv_operator.checks.core import settings as settings_module
from tikv_operator.checks.core.settings import (
    ClusterSettings,
    Rejected,
    SettingsCache,
    configure,
    queries_for,
    settings_of,
)
from tikv_operator.model.cluster_resource import TiKVClusterSpec, spec_error

SPEC: dict[str, Any] = {"pd": {"url": "http://pd:2379", "timeout": "1500ms"},
                        "prometheus": {"url": "http://prom:9090", "timeout": "1m", "rateWindow": "2m"},
                        "tickets": {"refreshInterval": "2m"}, "flapping": {"window": "20m"}}
DEFAULT = timedelta(seconds=30)


def test_durations_are_numbers_and_the_rest_is_worked_out_once() -> None:
    settings = settings_of(SPEC, DEFAULT)
    assert isinstance(settings, ClusterSettings)
    assert (settings.pd_timeout_s, settings.prometheus_timeout_s, settings.probe_timeouts_s) == (1.5, 60.0, 61.5)
    assert settings.alertmanager_timeout_s is None  # the notifier's default
    assert settings.interval == DEFAULT  # no spec.interval: the operator's default
    assert settings.policy.refresh_interval == timedelta(minutes=2)
    assert settings.policy.flapping_window == timedelta(minutes=20)
    spec = TiKVClusterSpec.model_validate(SPEC)
    assert settings.configs == configure(spec)
    assert (dict(settings.queries), dict(settings.parts)) == queries_for(spec, configure(spec))
    assert settings.restart_horizon == configure(spec)["store_restarted"].window


def test_the_spec_interval_and_alertmanager_timeout_win() -> None:
    settings = settings_of({**SPEC, "interval": "1m30s", "alertmanager": {"timeout": "3s"}}, DEFAULT)
    assert isinstance(settings, ClusterSettings)
    assert (settings.interval, settings.alertmanager_timeout_s) == (timedelta(seconds=90), 3.0)


def test_a_spec_it_cannot_use_is_rejected_with_the_first_wrong_field() -> None:
    bad = {**SPEC, "prometheus": {"url": "http://prom:9090", "labelMatchers": {"1bad": "x"}}}
    rejected = settings_of(bad, DEFAULT)
    with pytest.raises(ValidationError) as error:
        TiKVClusterSpec.model_validate(bad)
    assert rejected == Rejected(spec_error(error.value))
    assert rejected.reason.startswith("spec.prometheus.labelMatchers: ")
    assert isinstance(settings_of(None, DEFAULT), Rejected)  # no spec at all: pd and prometheus missing


def test_the_cache_works_a_spec_out_once_and_again_only_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[TiKVClusterSpec] = []

    def counted(spec: TiKVClusterSpec) -> Any:
        calls.append(spec)
        return configure(spec)

    monkeypatch.setattr(settings_module, "configure", counted)
    cache = SettingsCache(DEFAULT)
    spec = {**SPEC}
    first = cache.of(spec)
    assert cache.of(spec) is first
    assert cache.of({**SPEC}) is first  # an equal spec (kopf's next copy of an unchanged object)
    assert len(calls) == 1
    spec["interval"] = "10s"  # changed in place: the cache kept its own copy
    second = cache.of(spec)
    assert isinstance(second, ClusterSettings)
    assert second.interval == timedelta(seconds=10)
    assert len(calls) == 2
    rejected = cache.of({"pd": {}})
    assert isinstance(rejected, Rejected)
    assert cache.of({"pd": {}}) is rejected
    assert len(calls) == 2
