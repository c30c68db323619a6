"""Whether a folder the project must write to can be written, checked before any work."""

from __future__ import annotations

import tempfile
from pathlib import Path


def file_in_the_way(folder: Path) -> Path | None:
    """The first existing part of `folder` that is a file, not a folder."""
    for part in reversed([folder, *folder.parents]):
        if part.exists() and not part.is_dir():
            return part
    return None


def writable_folder_problem(folder: Path, create: bool = True) -> str | None:
    """Why `folder` cannot be created or written, or None. With `create`, makes it (as the job
    would); without, tries its nearest existing ancestor. A temporary probe file tells more than
    os.access (root, ACLs, read-only mounts) and leaves nothing behind."""
    folder = Path(folder).absolute()
    blocker = file_in_the_way(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = next(p for p in (folder, *folder.parents) if p.exists())
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"{folder} cannot be written ({(err.strerror or str(err)).lower()})"
    return None
