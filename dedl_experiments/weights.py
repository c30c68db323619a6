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
from dataclasses import dataclass

from omegaconf import DictConfig

from dedl_experiments.models import weights
from dedl_experiments.sweeps import expand


@dataclass(frozen=True, order=True)
class Needed:
    kind: str  # "smp" (segmentation encoder) or "timm" (classifier)
    name: str  # smp encoder / timm model
    weights: str  # smp weights name / timm pretrained tag

    def resolve(self, allow_download: bool = False):
        if self.kind == "smp":
            return weights.resolve_smp_weights(self.name, self.weights, allow_download)
        return weights.resolve_timm_weights(f"{self.name}.{self.weights}", allow_download)

    def __str__(self) -> str:
        return f"{self.kind} {self.name} / {self.weights}"


def needed(cfg: DictConfig) -> Needed | None:
    if cfg.init.name == "random":
        return None
    inits = cfg.encoder.inits[cfg.init.name]
    if cfg.task.name == "segmentation":
        return Needed("smp", cfg.encoder.segmentation, inits.segmentation)
    return Needed("timm", cfg.encoder.classification, inits.classification.split(".", 1)[1])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "fetch"):
        print(__doc__, file=sys.stderr)
        return 2
    command, overrides = argv[0], argv[1:]
    jobs = expand(overrides)
    wanted = sorted({n for n in map(needed, jobs) if n is not None})
    print(f"{len(jobs)} jobs need {len(wanted)} pretrained weights "
          f"(weights directory {weights.weights_dir()}, Hugging Face cache {weights.hf_cache_dir()})")
    missing = 0
    for item in wanted:
        source, path = item.resolve(allow_download=command == "fetch")
        if path is None:
            missing += 1
            reason = " (downloads are off: HF_HUB_OFFLINE or DEDL_OFFLINE is set)" \
                if command == "fetch" and not weights.downloads_allowed(True) else ""
            print(f"  missing  {item}{reason}")
        else:
            print(f"  {source:<9}{item}  {path}")
    if missing:
        print(f"{missing} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
