"""Replays of what real identity providers send, against scimbridge over HTTP."""
