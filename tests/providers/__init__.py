"""Provider adapter tests: unit tests per adapter plus the shared contract suite."""
