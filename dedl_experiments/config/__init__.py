"""Compose and check a job's config before any work: the config files and their schemas, value rules,
components built from `_target_` nodes, sweep expansion outside a Hydra app, and the Hydra
callbacks of runs and sweeps."""
