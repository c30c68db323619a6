"""The Hydra configs, shipped inside the package: found as `pkg://dedl_experiments.conf` from any
working directory and from a non-editable install. User config folders join through Hydra's
search path (`hydra.searchpath=[file:///my/conf]`)."""

from pathlib import Path

CONFIG_PATH = "pkg://dedl_experiments.conf"
CONF_DIR = Path(__file__).resolve().parent
