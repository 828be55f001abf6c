"""Checkpoint schedule, atomic save/load, sha256, the SQLite catalog, the hub table."""
