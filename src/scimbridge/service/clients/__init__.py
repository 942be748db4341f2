"""SCIM clients and API programs: tokens, rate limits, deviations, idempotency."""
