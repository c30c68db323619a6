"""Benchmarks, run from the repository root: `bench` (python -m benchmarks.bench: the training
step against the released notebooks' loop, and sweep throughput), `sweep_bench` (cells per
hour of a mini sweep at k jobs per GPU), `data_bench` (data pipeline alone) and
`reference_loop` (the released notebooks' way of training, the step benchmark's baseline)."""
