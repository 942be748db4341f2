"""Running scimbridge: metrics, readiness, periodic maintenance, the secret key."""
