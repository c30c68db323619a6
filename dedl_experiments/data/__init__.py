"""Data access: the inForm export reader, synthetic data, tiling and splits."""
