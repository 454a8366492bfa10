"""Benchmarks of tikv-operator (issue 8): run `make bench` or `.venv/bin/python -m bench.run_all`."""
