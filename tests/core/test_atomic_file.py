"""Write-then-rename: complete or absent, never half-written, readable like any new file."""

from __future__ import annotations

import os
import stat

import pytest

from sheap_blender.core.atomic_file import replacing


def test_the_file_appears_only_when_complete_and_with_the_usual_permissions(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    with replacing(target) as tmp, open(tmp, "xb") as out:
        out.write(b"new")
        assert target.read_bytes() == b"old"  # the old file is intact until the end
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["result.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as tmp, open(tmp, "xb") as out:
        out.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["result.bin"]
