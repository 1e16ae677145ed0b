"""Probes: measurements taken on a model during or after training (as training callbacks or functions)."""
