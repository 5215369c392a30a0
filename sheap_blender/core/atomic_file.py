"""Write-then-rename: a file appears complete or not at all (never half-written, nothing left on failure).

Also the checks every output gets before the work that fills it starts: it is not a folder, not
one of the inputs, and its folder exists and takes a new file.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

# `.NAME.PID.XXXXXXXX.tmp`, and the same with the output's own suffix after it (writers that pick a
# format from the name's end, e.g. OpenCV's video writer, write `....tmp.mp4`)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; renamed onto `path` when the block ends well, else removed.

    Beside it, so the rename is atomic (same file system); named `.NAME.PID.XXXXXXXX.tmp`, so that
    what a killed writer left (SIGKILL runs no clean-up) is recognised by a later write of the same
    file and removed once its process is gone. Created by the caller with the usual permissions
    (mkstemp's 0600 would make results unreadable to others).
    """
    path = Path(path)
    remove_orphans(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful rename


def remove_orphans(path: Path) -> list[Path]:
    """Remove the temporaries of `path` left by writers that no longer run; returns what was removed."""
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and match["name"] == path.name and not _running(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # someone else's live process (or not a pid at all)
    return True


def check_output(path: str | os.PathLike, *inputs: str | os.PathLike | None) -> Path:
    """The output as an absolute path, once it is known the work's file can be written there.

    Refused (InputError, one line): a folder, one of `inputs`, a folder that does not exist or
    does not take a new file (tried, since permissions alone do not tell, e.g. for root).
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise InputError(path, "is a folder: give a file name for the output")
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise InputError(path, "the output would overwrite an input: choose another name")
    if not path.parent.is_dir():
        raise InputError(path, f"output folder {path.parent} does not exist")
    probe = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise InputError(path, f"cannot write in {path.parent} ({exc.strerror or type(exc).__name__})") from None
    probe.unlink(missing_ok=True)
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
