"""HTTP API: the only place where errors become HTTP responses."""
