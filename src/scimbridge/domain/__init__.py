"""Plain models and rules, shared by every layer above."""
