"""Runs placed in a table's cells (aggregate.py), the newest per seed and fold, and the seed as the
unit of replication (units.py)."""
