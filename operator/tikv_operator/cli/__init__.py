"""The `tikv-operator` command line: run, monitor, tickets (I/O)."""
