"""Shared test helpers: fake clocks, vector loading, polling."""
