"""Launcher presets for `-m` sweeps: `hydra/launcher=local|gpus|slurm|slurm_local`.

Hydra finds this folder through `hydra.searchpath: [pkg://multirun_launchers/conf]` in the
primary config; a `pkg://` search path must be an importable package, hence this file.
"""
