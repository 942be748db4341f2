"""Emails: queueing them with the change, rendering and delivering them."""
