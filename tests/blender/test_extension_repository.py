"""`build_addon.py --repo DIR`: an extension repository (the zip and Blender's own index) from which a
throw-away Blender user folder installs the extension, then updates it once a newer version is built."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import CHILD_SCRIPT_END

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "blender_manifest.toml").read_text())["version"]

CLIENT = r"""
import os, sys, tomllib
import bpy
url, phase = sys.argv[-2:]
status = 1
try:
    prefs = bpy.context.preferences
    prefs.system.use_online_access = True  # what the user allows once in Preferences > System
    repos = prefs.extensions.repos
    repo = next((r for r in repos if r.module == "studio"), None) or repos.new(name="Studio", module="studio",
                                                                               remote_url=url)
    index = list(repos).index(repo)
    assert bpy.ops.extensions.repo_sync(repo_index=index) == {"FINISHED"}
    if phase == "install":
        assert bpy.ops.extensions.package_install(repo_index=index, pkg_id="sheap_blender",
                                                  enable_on_install=True) == {"FINISHED"}
    else:
        assert bpy.ops.extensions.package_upgrade_all() == {"FINISHED"}
    manifest = os.path.join(repo.directory, "sheap_blender", "blender_manifest.toml")
    with open(manifest, "rb") as fh:
        print("installed-version", tomllib.load(fh)["version"], flush=True)
    import importlib
    module = importlib.import_module("bl_ext.studio.sheap_blender")
    print("module", module.__file__, flush=True)
""" + CHILD_SCRIPT_END


def build_repo(checkout: Path, repo_dir: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(checkout / "build_addon.py"), "--repo", str(repo_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def client(user: Path, url: str, phase: str) -> str:
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, "-c", CLIENT, url, phase], env=env, cwd=user, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def newer_checkout(tmp_path: Path) -> tuple[Path, str]:
    """A copy of what build_addon.py packs, with the manifest's version one patch level up."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("sheap_blender", "backend"):
        shutil.copytree(REPO / name, copy / name, ignore=ignore)
    (copy / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup_env.py", copy / "scripts")
    shutil.copy(REPO / "build_addon.py", copy)
    major, minor, patch = (int(x) for x in VERSION.split("."))
    newer = f"{major}.{minor}.{patch + 1}"
    text = (REPO / "blender_manifest.toml").read_text()
    (copy / "blender_manifest.toml").write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{newer}"', text))
    return copy, newer


def test_the_index_is_blenders_and_names_the_zip(tmp_path):
    repo_dir = tmp_path / "repo"
    build_repo(REPO, repo_dir)
    zip_path = repo_dir / f"sheap_blender-{VERSION}.zip"
    index = json.loads((repo_dir / "index.json").read_text())
    assert index["version"] == "v1" and len(index["data"]) == 1
    entry = index["data"][0]
    assert (entry["id"], entry["version"], entry["type"]) == ("sheap_blender", VERSION, "add-on")
    assert entry["archive_url"] == f"./{zip_path.name}"
    assert entry["archive_size"] == zip_path.stat().st_size
    assert entry["archive_hash"] == "sha256:" + hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert (repo_dir / "index.html").is_file()
    assert sorted(p.name for p in repo_dir.iterdir()) == ["index.html", "index.json", zip_path.name]


def test_blender_installs_and_updates_from_the_repository(tmp_path):
    if not list(Path(sys.prefix).glob("lib/python*/site-packages/bpy/*/scripts/addons_core/bl_pkg")):
        pytest.skip("this bpy has no extensions system")
    repo_dir = tmp_path / "repo"
    build_repo(REPO, repo_dir)
    url = (repo_dir / "index.json").as_uri()
    user = tmp_path / "blender_user"
    user.mkdir()
    out = client(user, url, "install")
    assert f"installed-version {VERSION}" in out and "module " + str(user) in out, out[-2000:]

    checkout, newer = newer_checkout(tmp_path)
    build_repo(checkout, repo_dir)  # the studio publishes a new version into the same folder
    assert sorted(p.name for p in repo_dir.glob("*.zip")) == [f"sheap_blender-{newer}.zip"]
    out = client(user, url, "update")
    assert f"installed-version {newer}" in out, out[-2000:]
