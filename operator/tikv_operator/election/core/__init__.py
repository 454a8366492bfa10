"""Lease arithmetic: who holds a Lease, and when it expires (pure)."""
