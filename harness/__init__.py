"""What tests and benchmarks both use: the local platform, the operator as a process, kubectl and Prometheus.

Neither tests/ nor bench/ owns it, so neither imports the other for it."""
