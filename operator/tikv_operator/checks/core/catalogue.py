"""The invariant catalogue as the rest of the operator reads it: every built-in invariant's scope, source,
rule in words and defaults, by name.

The entries are declared once, with their rule functions, in checks.core.invariants.declarations (which says
what adding an invariant takes); this module is where cluster_resource (spec.invariants, `kubectl explain`),
the docs/invariants.md table test and the benchmarks read them.
"""

from __future__ import annotations

from tikv_operator.checks.core.invariants.declarations import ENTRIES, INVARIANT_NAMES, Entry, Scope, Source

__all__ = ["ENTRIES", "INVARIANT_NAMES", "Entry", "Scope", "Source"]
