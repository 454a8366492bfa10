"""A cluster's own invariants (spec.customInvariants): PromQL whose every result series is a violation, as
in a PrometheusRule; an empty result is ok, a query error unknown (rule 5)."""

from __future__ import annotations

from collections.abc import Sequence

from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.instances import origin
from tikv_operator.checks.core.invariants.engine import (
    Context,
    CustomSpec,
    InvariantConfig,
    Rule,
    finding,
    number,
    per_store,
    prometheus_blind,
    up_only,
)
from tikv_operator.checks.core.observation import Series, Store
from tikv_operator.checks.core.queries import CUSTOM_PREFIX

SHOWN_SERIES = 3


def check_name(custom: CustomSpec) -> str:
    return f"{CUSTOM_PREFIX}{custom.name}"


def _describe(series: Sequence[Series]) -> str:
    shown = [f"{{{', '.join(f'{k}={v!r}' for k, v in origin(s).items())}}} = {_value(s)}"
             for s in series[:SHOWN_SERIES]]
    more = f" and {len(series) - SHOWN_SERIES} more" if len(series) > SHOWN_SERIES else ""
    return "; ".join(shown) + more


def _value(s: Series) -> str:
    value = number(s.value)
    return "NaN" if value is None else f"{value:g}"


def _message(custom: CustomSpec, what: str) -> str:
    return f"{custom.summary}: {what}" if custom.summary else what


def _evidence(ctx: Context, check: str, series: Sequence[Series]) -> dict[str, object]:
    return {"query": ctx.query(check), "series": [origin(s) | {"value": _value(s)} for s in series[:SHOWN_SERIES]],
            "resultSeries": len(series)}


def _cluster_rule(custom: CustomSpec) -> Rule:
    check = check_name(custom)

    def rule(ctx: Context, config: InvariantConfig) -> list[Finding]:
        blind = prometheus_blind(ctx, config, check, "", custom.name)
        if blind is not None:
            return [blind]
        series = ctx.view.cluster_series(check)
        if series:
            return [finding(config, "", "violated", _message(custom, f"{len(series)} series: {_describe(series)}"),
                            **_evidence(ctx, check, series))]
        return [finding(config, "", "ok", _message(custom, "the expression returns nothing"),
                        query=ctx.query(check))]

    return rule


def _store_rule(custom: CustomSpec) -> Rule:
    """Series mapped to stores through their instance or pod label, as the built-ins are. A series that
    maps to no store could belong to any store without a series of its own: those are then unknown."""
    check = check_name(custom)

    def judge(store: Store, ctx: Context, config: InvariantConfig) -> Finding | None:
        blind = prometheus_blind(ctx, config, check, store.id, custom.name)
        if blind is not None:
            return blind
        key, series = ctx.view.lookup(check, store)
        if series:
            return finding(config, store.id, "violated",
                           _message(custom, f"store {store.id} ({key}): {_describe(series)}"),
                           **_evidence(ctx, check, series))
        unmapped = ctx.view.unmapped_keys(check) + (["(none)"] if ctx.view.by_check.get(check, {}).get("") else [])
        if unmapped:
            return finding(config, store.id, "unknown",
                           f"{custom.name}: the result has series that match no PD store ({', '.join(unmapped[:3])}); "
                           "a store-scoped expression must keep the instance and pod labels "
                           "(sum by (instance, pod) ...)",
                           cause="ambiguous", query=ctx.query(check))
        return finding(config, store.id, "ok", _message(custom, f"store {store.id}: the expression returns nothing "
                                                        "for it"), query=ctx.query(check))

    return per_store(up_only(judge))


def custom_rule(custom: CustomSpec) -> Rule:
    return _store_rule(custom) if custom.scope == "store" else _cluster_rule(custom)
