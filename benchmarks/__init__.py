"""Benchmarks: `data_bench` (data pipeline alone) and `reference_loop` (the released notebooks'
way of training, the baseline of `python -m dedl_experiments.bench`)."""
