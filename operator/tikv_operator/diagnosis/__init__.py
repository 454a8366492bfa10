"""Correlated diagnosis: which open ticket explains which (docs/design.md rules 26 and 27)."""
