"""In-process fakes of external services, speaking their real wire protocols (for tests)."""
