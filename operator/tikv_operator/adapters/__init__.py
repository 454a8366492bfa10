"""Adapters: the only code that talks to PD, Prometheus and the Kubernetes API."""
