"""Background jobs: the timer sweep and the outbox worker."""
