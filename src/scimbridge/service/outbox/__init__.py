"""The outbox: workers that claim, apply and settle jobs; lanes, leases, status."""
