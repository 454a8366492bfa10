"""The ticket lifecycle and the commands people give tickets (pure)."""
