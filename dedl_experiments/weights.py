"""Pretrained weights for compute nodes without internet.

    python -m dedl_experiments.weights check +experiment=table12        # what a sweep needs
    python -m dedl_experiments.weights fetch +experiment=table12        # download it

Takes the same overrides as a job or sweep (`a=x,y` sweeps and `+experiment=...` expand to
every job), lists each pretrained weight those jobs need (random init needs none) and where
it is found: the project's weights directory ($DEDL_WEIGHTS_DIR), the Hugging Face cache
($HF_HUB_CACHE / $HF_HOME), or nowhere. `fetch` downloads what is missing into the Hugging
Face cache (set HF_HOME to a shared folder so that jobs on other nodes find it). `check`
exits 1 when something is missing.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from dedl_experiments.models import pretrained
from dedl_experiments.models.pretrained import PretrainedWeights
from dedl_experiments.config.sweeps import expand
from dedl_experiments.tasks import task_class
from multirun_launchers.devices import register_resolvers


def needed(cfg: DictConfig) -> PretrainedWeights | None:
    """What a job of `cfg` loads before training (None: random init)."""
    return None if cfg.init.name == "random" else task_class(cfg).pretrained_weights(cfg)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "fetch"):
        print(__doc__, file=sys.stderr)
        return 2
    command, overrides = argv[0], argv[1:]
    jobs = expand(overrides)
    wanted = sorted({n for n in map(needed, jobs) if n is not None})
    print(f"{len(jobs)} jobs need {len(wanted)} pretrained weights "
          f"(weights directory {pretrained.weights_dir()}, Hugging Face cache {pretrained.hf_cache_dir()})")
    missing = 0
    for item in wanted:
        source, path = item.resolve(allow_download=command == "fetch")
        if path is None:
            missing += 1
            reason = " (downloads are off: HF_HUB_OFFLINE or DEDL_OFFLINE is set)" \
                if command == "fetch" and not pretrained.downloads_allowed(True) else ""
            print(f"  missing  {item}{reason}")
        else:
            print(f"  {source:<9}{item}  {path}")
    if missing:
        print(f"{missing} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    register_resolvers()  # the launcher presets' resolvers, before Hydra composes
    sys.exit(main(sys.argv[1:]))
