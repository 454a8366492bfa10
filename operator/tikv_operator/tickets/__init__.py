"""OperatorTickets: what the operator opens, updates and resolves (pure, in core; kube.writer writes them)."""
