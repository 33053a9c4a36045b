"""The worker: claims due rows under a lease and runs their jobs (DESIGN invariant 1)."""
