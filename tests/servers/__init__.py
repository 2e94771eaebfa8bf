"""Real media servers run as subprocesses on loopback, for integration tests."""
