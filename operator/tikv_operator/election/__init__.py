"""Leader election over a Lease: the elector and its Lease lock (I/O)."""
