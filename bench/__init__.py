"""Benchmarks of tikv-operator: run `make bench` or `.venv/bin/python -m bench.run_all`."""
