"""What to send Alertmanager, and when (pure)."""
