"""Prepared-data caches: built once under a lock, verified before reuse, and the content digest
that names the data a cell trained on.

A cache folder is built in a temporary folder and renamed into place, so a crash never leaves a
half-written cache. Its last file, `manifest.json`, lists the size of every other file: it
marks the cache complete, and a reuse checks it, so a truncated or deleted file is found before
training and the cache is rebuilt (with a warning naming the file) instead of failing deep
inside a run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from dedl_experiments.locks import exclusive_lock

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def _write_manifest(folder: Path) -> None:
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"sizes": sizes}, indent=1))


def damage(folder: Path) -> str | None:
    """What is wrong with a complete cache (a missing, resized or unreadable file), or None."""
    try:
        sizes = json.loads((folder / MANIFEST).read_text())["sizes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{folder / MANIFEST} is unreadable ({type(err).__name__})"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, {size} when it was built"
        if path.suffix == ".json":
            try:
                json.loads(path.read_text())
            except ValueError:
                return f"{path} is not valid JSON"
    return None


def build_once(cache: Path, build: Callable[[Path], None]) -> None:
    """Run `build(tmp)` unless `cache` is complete and intact, then move tmp into place.

    Jobs that start together take turns on a lock: the first builds, the others reuse. A
    damaged cache is rebuilt with a warning naming what is damaged.
    """
    with exclusive_lock(cache.parent / f".{cache.name}.lock"):
        if (cache / MANIFEST).exists():
            problem = damage(cache)
            if problem is None:
                log.info("prepared data: reusing %s", cache)
                return
            log.warning("prepared data %s is damaged: %s; rebuilding it", cache, problem)
        else:
            log.info("prepared data: building %s", cache)
        tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            _write_manifest(tmp)
            shutil.rmtree(cache, ignore_errors=True)  # a damaged or incomplete earlier build
            os.replace(tmp, cache)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def dataset_digest(entries: Iterable[tuple[str, str, str]]) -> str:
    """Digest of a dataset's content: (split, name relative to the root, sha256 of the bytes)
    per file. File names relative to the root and bytes define it, not where the root lies,
    so a moved copy keeps its digest and any changed, added or reassigned file changes it."""
    canonical = json.dumps(sorted(entries), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
