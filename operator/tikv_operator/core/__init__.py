"""The pure core: observations, invariants and the ticket lifecycle.

Nothing in here does I/O. An import-linter contract (pyproject.toml) fails the test run if a module
below this package imports kopf, httpx, kubernetes_asyncio, the Prometheus client or the adapters.
"""
