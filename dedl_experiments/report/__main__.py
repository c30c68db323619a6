"""`python -m dedl_experiments.report table=NAME [key=value ...]`: see report/cli.py (what the
report shows and writes), report/build.py (which runs count) and `--help` (the options)."""

import sys

from dedl_experiments.report.cli import main
from multirun_launchers.devices import register_resolvers

if __name__ == "__main__":
    register_resolvers()  # the launcher presets' resolvers, before Hydra composes
    sys.exit(main())
