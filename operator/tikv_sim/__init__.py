"""tikv-sim: a simulated TiKV cluster (PD HTTP API, per-store TiKV metrics, injectable faults)."""

__version__ = "0.1.0"
