"""Write-then-rename: a file appears complete or not at all (never half-written, nothing left on failure)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; renamed onto `path` when the block ends well, else removed.

    Beside it, so the rename is atomic (same file system); named `.NAME.XXXXXXXX.tmp` so that what
    a killed writer left can be found. Created by the caller with the usual permissions (mkstemp's
    0600 would make results unreadable to others).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful rename
