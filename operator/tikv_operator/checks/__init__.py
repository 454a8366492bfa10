"""Checking a cluster: its probes of PD and Prometheus and the loop that runs them (I/O)."""
