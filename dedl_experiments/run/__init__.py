"""One job from start to record: the job (skip, resume or run a cell), the cell's claim and lifecycle,
training then testing one run, cells with folds, stop signals, output folders and the lock between
processes."""
