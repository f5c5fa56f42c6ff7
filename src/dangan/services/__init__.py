"""Use cases. Each takes the acting user, runs in one transaction, writes its audit event, returns plain data."""
