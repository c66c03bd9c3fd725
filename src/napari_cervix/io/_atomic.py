"""Atomic file replacement, the one way this package writes a file: write to a sibling temporary file,
then ``os.replace`` it into place."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (its folder is created): it replaces ``path`` if the block
    succeeds, else is removed. A fresh name (not ``mkstemp``) gives the file the usual permissions; the data
    is flushed to disk before the rename, so neither an interrupted write nor a power cut leaves a truncated
    file where a good one was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "r+b") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
