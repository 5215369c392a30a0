"""Build the installable extension zip: `python build_addon.py` -> dist/sheap_blender-<version>.zip.

Layout of the zip (what Blender's extension installer expects): `blender_manifest.toml` and the
package's files (`__init__.py`, its modules, `core/`) at the root; the backend's code under
`backend_src/` (`backend/`, `scripts/setup_env.py` and a copy of `sheap_blender/core/`, which
the backend imports), which `backend_client.process.backend_root()` finds there. No caches
(`__pycache__`, `*.pyc`), no tests, no weights. Standard library only.

`python build_addon.py --repo DIR` builds the zip into DIR and writes the repository index there
with Blender's own `extension server-generate` (index.json, and index.html): DIR is then an extension
repository to serve from a file share or a web server, from which Blender installs and updates.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
MANIFEST = REPO / "blender_manifest.toml"
PACKAGE = REPO / "sheap_blender"
BACKEND_FILES = ("backend", "scripts/setup_env.py")
BACKEND_CORE_PACKAGE = '"""The extension\'s `core` (pure NumPy), bundled for the backend process; not the add-on."""\n'
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".so", ".tmp"}
DATA_SUFFIXES = {".py", ".txt", ".toml", ".md", ".json", ".safetensors"}  # .safetensors: core/data (ARKit reference)
BLENDER_EXT = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"  # inside a bpy module: Blender's extension CLI


def manifest_field(name: str, text: str | None = None) -> str:
    text = MANIFEST.read_text(encoding="utf-8") if text is None else text
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11: a top-level `key = "value"` line is enough here
        match = re.search(rf'^{name}\s*=\s*"([^"]*)"', text, re.MULTILINE)
        if not match:
            raise SystemExit(f"build_addon: {MANIFEST.name} has no {name}") from None
        return match.group(1)
    return str(tomllib.loads(text)[name])


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for path in sorted(root.rglob("*")):
        parts = set(path.relative_to(root).parts)
        if path.is_dir() or parts & SKIP_DIRS or path.suffix in SKIP_SUFFIXES or path.suffix not in DATA_SUFFIXES:
            continue
        found.append(path)
    return found


def build(output_dir: Path) -> Path:
    version = manifest_field("version")
    ext_id = manifest_field("id")
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{ext_id}-{version}.zip"
    temporary = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(MANIFEST, "blender_manifest.toml")
        for path in _files(PACKAGE):
            archive.write(path, path.relative_to(PACKAGE).as_posix())
        for name in BACKEND_FILES:
            for path in _files(REPO / name):
                archive.write(path, "backend_src/" + path.relative_to(REPO).as_posix())
        # the backend imports `sheap_blender.core` (NumPy only): a copy beside it, so that its path holds
        # nothing but its own code (never the folder of every installed extension)
        archive.writestr("backend_src/sheap_blender/__init__.py", BACKEND_CORE_PACKAGE)
        for path in _files(PACKAGE / "core"):
            archive.write(path, "backend_src/sheap_blender/" + path.relative_to(PACKAGE).as_posix())
    temporary.replace(target)
    return target


def _generators(blender: str | None) -> list[list[str]]:
    """Commands that run Blender's `extension server-generate`, best first: the Blender given, `blender`
    on PATH, then the command line inside a bpy module (this Python's, then this checkout's .venv-bpy*)."""
    found = []
    for exe in (blender, shutil.which("blender")):
        if exe:
            found.append([exe, "--factory-startup", "--command", "extension"])
    scripts = []
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        scripts += [(sys.executable, p) for location in spec.submodule_search_locations
                    for p in sorted(Path(location).glob(BLENDER_EXT))]
    for python in sorted(REPO.glob(".venv-bpy*/bin/python")):
        scripts += [(str(python), p) for p in sorted(python.parent.parent.glob(f"lib/python*/site-packages/bpy/"
                                                                                f"{BLENDER_EXT}"))]
    found += [[python, str(script)] for python, script in scripts]
    return found


def write_repository(repo_dir: Path, blender: str | None = None) -> tuple[Path, Path]:
    """Build the zip into `repo_dir` (other versions of this extension there are removed: the repository
    serves the one just built) and write its index.json with Blender's own `server-generate`."""
    generators = _generators(blender)
    if not generators:
        raise SystemExit("build_addon: Blender's extension command line not found: give --blender PATH "
                         "(Blender 4.2 or later) or run this with a Python that has the bpy module")
    repo_dir.mkdir(parents=True, exist_ok=True)
    target = build(repo_dir)
    for old in repo_dir.glob(f"{manifest_field('id')}-*.zip"):
        if old != target:
            old.unlink()
    command = [*generators[0], "server-generate", "--repo-dir", str(repo_dir), "--html"]
    done = subprocess.run(command, capture_output=True, text=True)
    index = repo_dir / "index.json"
    if done.returncode != 0 or not index.is_file():
        message = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        raise SystemExit(f"build_addon: {' '.join(command[:2])} server-generate failed: {message[-1]}")
    return target, index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    parser.add_argument("--repo", type=Path, metavar="DIR",
                        help="write the zip and the repository index (index.json, index.html) into DIR, a folder "
                             "to serve from a file share or a web server")
    parser.add_argument("--blender", help="the Blender executable whose `extension server-generate` writes the "
                                          "index (default: blender on PATH, else the bpy module's command line)")
    args = parser.parse_args(argv)
    if args.repo is not None:
        target, index = write_repository(args.repo, args.blender)
    else:
        target, index = build(args.output_dir), None
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    print(f"wrote {target} ({count} files, {target.stat().st_size // 1024} KiB)")
    if index is not None:
        print(f"wrote {index}: add the repository in Blender (Preferences > Get Extensions > Repositories > "
              f"+ > Add Remote Repository) with the URL {index.resolve().as_uri()} or the web address it is "
              "served at")
    return 0


if __name__ == "__main__":
    sys.exit(main())
