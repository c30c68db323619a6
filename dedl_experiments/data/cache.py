"""Prepared-data caches: built once under a lock, verified before reuse, and the content digest
that names the data a cell trained on.

A cache folder is built in a temporary folder and renamed into place, so a crash never leaves a
half-written cache. Its last file, `manifest.json`, lists the size and the SHA-256 of every
other file: it marks the cache complete, and a reuse checks it, so a truncated, deleted or
changed file is found before training and the cache is rebuilt (with a warning naming the file)
instead of training on damaged arrays. Hashing reads the cache once per job: 1-2 s per GB
(0.5-1.3 GB/s measured on one core with SHA instructions), and training reads it anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from dedl_experiments.run.folders import DiskFull, is_disk_full, tree_size
from dedl_experiments.run.locks import exclusive_lock

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def _write_manifest(folder: Path) -> None:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in files}
    hashes = {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}
    (folder / MANIFEST).write_text(json.dumps({"sizes": sizes, "sha256": hashes}, indent=1))


def damage(folder: Path) -> str | None:
    """What is wrong with a complete cache (a missing, resized, changed or unreadable file), or
    None. A manifest without hashes (an older version's) cannot vouch for the content: the
    cache is rebuilt, as writing hashes of arrays that may already be damaged would bless them."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        sizes, hashes = manifest["sizes"], manifest.get("sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{folder / MANIFEST} is unreadable ({type(err).__name__})"
    if not isinstance(hashes, dict) or set(hashes) != set(sizes):
        return f"{folder / MANIFEST} has no content hash of each file (an older version wrote it)"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, {size} when it was built"
    for name, expected in hashes.items():
        try:
            actual = file_sha256(folder / name)
        except OSError as err:
            return f"{folder / name} is unreadable ({err.strerror})"
        if actual != expected:
            return f"{folder / name} changed since it was built (its SHA-256 differs)"
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
        except BaseException as err:
            written = tree_size(tmp) if tmp.exists() else 0
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(err, Exception) and is_disk_full(err):
                raise DiskFull(cache, written, "building the prepared data", at_least=True) from err
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
