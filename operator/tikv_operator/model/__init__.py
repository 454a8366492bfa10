"""The words and the two resources every feature shares (pure)."""
