"""Provider adapters: fetch changes since a cursor, in domain terms (DESIGN invariant 9)."""
