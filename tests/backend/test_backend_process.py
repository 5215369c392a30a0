"""The extension's side of the pipe (sheap_blender.backend_client.process, no bpy): what a dying backend says."""

from __future__ import annotations

import pytest

from sheap_blender.backend_client.process import BackendError, BackendProcess


def test_a_dying_backend_is_reported_with_its_real_last_words(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    "echo 'W0000 00:00:1795540799.474205 15682 landmark_projection_calculator.cc:186] chatter' >&2\n"
                    "echo 'torch: out of memory while loading the model' >&2\n"
                    "echo 'I0000 00:00:1795540799.5 15682 gl_context.cc:369] more chatter' >&2\n"
                    "exit 3\n")
    fake.chmod(0o755)
    backend = BackendProcess(fake)
    with pytest.raises(BackendError, match=r"exited unexpectedly \(code 3\): torch: out of memory"):
        backend.wait_ready(timeout=30)


def test_a_missing_python_is_one_clear_line(tmp_path):
    with pytest.raises(BackendError, match="backend Python not found"):
        BackendProcess(tmp_path / "nope" / "python")
