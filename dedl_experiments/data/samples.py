"""The one sample type of every segmentation layout (inform.py, folder.py): what the readers
find, the splits assign and the prepare step reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One image and its nucleus mask. `name` identifies it (an inForm sample name, a folder
    image's file stem); `patient` groups the samples that must share a split (a folder image is
    its own patient)."""

    name: str
    patient: str
    image: Path
    mask: Path | None
