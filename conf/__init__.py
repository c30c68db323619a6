"""The Hydra config groups (one folder each, experiment/ for the tables, config.yaml at the top).

They live at the repository's root and are installed as the package `dedl_experiments.conf`
(pyproject.toml maps it here), found as `pkg://dedl_experiments.conf` from a checkout, an
editable install and a wheel alike. Code that reads them is in dedl_experiments/config/config_files.py.
"""
