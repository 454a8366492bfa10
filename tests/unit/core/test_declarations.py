"""Each built-in invariant is declared once (checks.core.invariants.declarations), and everything else is derived
from that declaration: its name, its rule, its runbook, its place in the CRD, the checks asked for it and
the PromQL range its window sets."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tikv_operator.checks.core import catalogue
from tikv_operator.checks.core.invariants import CATALOGUE
from tikv_operator.checks.core.invariants.declarations import DECLARATIONS, ENTRIES, Entry
from tikv_operator.checks.core.queries import P99_LATENCY, QUERY_NAMES, pd_health_parts, store_health_parts
from tikv_operator.checks.core.settings import configure, queries_for
from tikv_operator.model import vocabulary
from tikv_operator.model.cluster_resource import TiKVClusterSpec

REPO = Path(__file__).resolve().parents[3]
ANY_RANGE: defaultdict[str, str] = defaultdict(lambda: "1m")
UNION_CHECKS = set(store_health_parts({}, ANY_RANGE)) | set(pd_health_parts({}, ANY_RANGE))


def spec(**fields: Any) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://p:9090"},
                                           **fields})


def test_the_names_the_catalogue_and_the_rules_are_the_declarations() -> None:
    names = tuple(e.name for e in DECLARATIONS)
    assert len(set(names)) == len(names)
    assert names == catalogue.INVARIANT_NAMES
    assert tuple(catalogue.ENTRIES) == names
    assert catalogue.Entry is Entry
    assert tuple(CATALOGUE) == names
    for e in DECLARATIONS:
        assert CATALOGUE[e.name].entry is ENTRIES[e.name] is e
        assert callable(e.judged_by), e.name
        assert CATALOGUE[e.name].rule is e.judged_by, e.name
        assert re.fullmatch(vocabulary.INVARIANT_NAME_PATTERN, e.name), e.name
        assert len(e.name) <= vocabulary.INVARIANT_NAME_MAX, e.name


def test_every_declared_invariant_has_its_runbook() -> None:
    for e in DECLARATIONS:
        assert e.runbook == f"docs/runbooks/{e.name}.md"
        assert (REPO / e.runbook).is_file(), e.runbook


def test_the_crd_lists_every_declared_invariant_with_its_description() -> None:
    crd = yaml.safe_load((REPO / "crds" / "tikvclusters.yaml").read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    overrides = spec_schema["properties"]["invariants"]["properties"]
    assert list(overrides) == [e.name for e in DECLARATIONS]
    for e in DECLARATIONS:
        assert overrides[e.name]["description"] == f"{e.name}: {e.describe()}"


def test_every_check_is_declared_by_an_invariant_and_exists() -> None:
    asked = {c for e in DECLARATIONS for c in e.checks}
    assert asked == UNION_CHECKS, "a union-query check no invariant asks for, or a declared check no query has"
    windowed = [e.window_check for e in DECLARATIONS if e.window_check is not None]
    assert len(set(windowed)) == len(windowed), "two invariants set one check's range"
    assert set(windowed) <= UNION_CHECKS | set(QUERY_NAMES)


@pytest.mark.parametrize("entry", [e for e in DECLARATIONS if e.window is not None or e.uses_rate_window],
                         ids=lambda e: e.name)
def test_a_window_sets_the_range_of_its_declared_check(entry: Entry) -> None:
    if entry.name == "store_restarted":  # how long restarts are remembered: restart_horizon
        assert entry.window_check is None
        return
    cluster = spec(invariants={entry.name: {"window": "7m"}})
    queries, parts = queries_for(cluster, configure(cluster))
    assert entry.window_check is not None
    expr = queries[P99_LATENCY] if entry.window_check == P99_LATENCY else parts[entry.window_check][1]
    assert "[7m]" in expr, entry.name
    default_queries, default_parts = queries_for(spec(), configure(spec()))
    default = (default_queries[P99_LATENCY] if entry.window_check == P99_LATENCY
               else default_parts[entry.window_check][1])
    assert "[7m]" not in default, entry.name


@pytest.mark.parametrize("entry", [e for e in DECLARATIONS if e.checks], ids=lambda e: e.name)
def test_a_check_is_asked_while_an_invariant_that_declares_it_is_enabled(entry: Entry) -> None:
    sharing = {e.name for e in DECLARATIONS if set(e.checks) & set(entry.checks)}
    alone = spec(invariants={name: {"enabled": False} for name in sharing - {entry.name}})
    _, parts = queries_for(alone, configure(alone))
    assert set(entry.checks) <= set(parts), entry.name
    off = spec(invariants={name: {"enabled": False} for name in sharing})
    _, parts = queries_for(off, configure(off))
    assert not set(entry.checks) & set(parts), entry.name
