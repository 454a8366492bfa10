"""The Kubernetes API as every feature uses it: the client, the writer, Secrets (I/O)."""
