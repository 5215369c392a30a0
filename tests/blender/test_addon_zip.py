"""The extension zip: its layout, Blender's own validator, and an install into a throw-away user
folder where the installed extension imports a result through its operator."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest
from helpers import CHILD_SCRIPT_END, synthetic_flame, synthetic_result, write, write_flame

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    path = out / f"sheap_blender-{manifest['version']}.zip"
    assert path.is_file()
    return path


def test_manifest_fields():
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "sheap_blender" and manifest["type"] == "add-on"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["platforms"]) <= {"linux-x64", "macos-x64", "macos-arm64", "windows-x64"}
    assert "arxiv" not in manifest.get("website", "")  # the paper is not the project's page
    assert (REPO / "LICENSE").read_text().startswith(" " * 20 + "GNU GENERAL PUBLIC LICENSE")
    assert manifest["permissions"]["files"]


def test_zip_layout(built):
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    # every module of every package of the extension, at the root; every module of the backend and of core under
    # backend_src/ (the backend imports sheap_blender.core)
    extension = {path.relative_to(REPO / "sheap_blender").as_posix() for path in (REPO / "sheap_blender").rglob("*.py")
                 if "__pycache__" not in path.parts}
    backend = {"backend_src/" + path.relative_to(REPO).as_posix() for path in (REPO / "backend").rglob("*.py")
               if "__pycache__" not in path.parts}
    core = {"backend_src/sheap_blender/" + name for name in extension if name.startswith("core/")}
    for expected in (extension, backend, core):
        assert expected <= set(names), sorted(expected - set(names))
    assert {"reconstruct/importer.py", "rig/build.py", "registration.py", "core/result/result_format.py",
            "core/flame/model.py", "backend_src/backend/__main__.py", "backend_src/backend/people/tracker.py",
            "backend_src/backend/model/predictor.py"} <= extension | backend
    # the ARKit reference the character solve is built from, with its licence, in both copies of core
    for prefix in ("", "backend_src/sheap_blender/"):
        reference = {f"{prefix}core/arkit/data/ict_facekit_arkit.safetensors",
                     f"{prefix}core/arkit/data/ICT-FaceKit-LICENSE.txt", f"{prefix}core/arkit/solve.py"}
        assert reference <= set(names), prefix
    # the backend's own copy of core: its path then holds nothing but its code
    assert {"backend_src/sheap_blender/__init__.py", "backend_src/sheap_blender/core/camera.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/")]
    assert not [n for n in names if n.startswith("sheap_blender/")]  # package files sit at the root


def _blender_ext() -> Path:
    scripts = Path(bpy.utils.system_resource("SCRIPTS"))
    path = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert path.is_file(), f"this bpy has no bl_pkg command line at {path}: Blender's validator cannot run"
    return path


def test_blender_validates_the_zip(built):
    done = subprocess.run([sys.executable, str(_blender_ext()), "validate", str(built)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


INSTALL_SCRIPT = r"""
import os, sys
import bpy
zip_path, result, flame, backend_python = sys.argv[-4:]
status = 1
try:
    assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    module = sys.modules["bl_ext.user_default.sheap_blender"]
    assert module.__file__.startswith(os.environ["BLENDER_USER_RESOURCES"]), module.__file__
    bpy.ops.wm.read_homefile(use_empty=True)  # factory settings would reset the preferences (add-ons)
    assert bpy.ops.sheap.import_result(filepath=result, flame=flame) == {"FINISHED"}
    roots = [o for o in bpy.data.objects if o.get("sheap_role") == "root"]
    print("installed-import-ok", len(roots), module.__file__, flush=True)
    if backend_python:
        # the installed backend (backend_src/ in the zip) run by the given environment: stand-ins, then a run
        prefs = bpy.context.preferences.addons[module.__name__].preferences
        prefs.backend_python = backend_python
        assert bpy.ops.sheap.use_demo_files() == {"FINISHED"}
        assert prefs.flame_path.startswith(os.environ["BLENDER_USER_RESOURCES"]), prefs.flame_path
        demo = os.path.dirname(prefs.flame_path)
        bpy.ops.wm.read_homefile(use_empty=True)
        assert bpy.ops.sheap.reconstruct_head(footage=os.path.join(demo, "astronaut.mp4"), device="cpu",
                                              frame_start=0, frame_end=8) == {"FINISHED"}
        heads = [o for o in bpy.data.objects if o.get("sheap_role") == "head"]
        print("installed-run-ok", len(heads), flush=True)
""" + CHILD_SCRIPT_END


def test_installs_as_an_extension_and_imports(built, tmp_path):
    _blender_ext()
    result = write(tmp_path / "clip.sheap.safetensors", synthetic_result(6))
    flame = write_flame(tmp_path / "flame.safetensors", synthetic_flame())
    user = tmp_path / "blender_user"
    user.mkdir()
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    env.pop("PYTHONPATH", None)
    backend_python = REPO / ".venv" / "bin" / "python"
    backend_python = str(backend_python) if backend_python.is_file() else ""
    done = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(built), str(result), str(flame), backend_python],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "installed-import-ok 1" in done.stdout
    if backend_python:  # the whole flow from the installed zip: demo stand-ins, Reconstruct Head, the rig
        assert "installed-run-ok 1" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_backend_path_holds_only_the_backend(monkeypatch):
    """Not the folder of every installed extension (this package's parent), nor an inherited PYTHONPATH."""
    from sheap_blender.backend_client.process import backend_environment, backend_root

    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    assert backend_environment()["PYTHONPATH"] == str(backend_root())
