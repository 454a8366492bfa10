"""Tickets as Alertmanager alerts: the notifier and its Alertmanager client (I/O)."""
