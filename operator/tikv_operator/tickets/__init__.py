"""OperatorTickets: what the operator opens, updates and resolves."""
