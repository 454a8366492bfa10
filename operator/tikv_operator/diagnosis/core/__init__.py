"""The pure part of diagnosis: the catalogue of causes, correlation, and the diagnosis a cause carries."""
