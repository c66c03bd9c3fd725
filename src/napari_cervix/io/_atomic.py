"""Atomic file replacement: write to a sibling temporary file, then ``os.replace`` it into place."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``: it replaces ``path`` if the block succeeds, else is
    removed. A fresh name (not ``mkstemp``) gives the file the usual permissions, and an interrupted
    write never leaves a truncated file where a good one was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
