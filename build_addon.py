"""Build the installable extension zip: `python build_addon.py` -> dist/sheap_blender-<version>.zip.

Layout of the zip (what Blender's extension installer expects): `blender_manifest.toml` and the
package's files (`__init__.py`, its modules, `core/`) at the root; the backend's code under
`backend_src/` (`backend/` and `scripts/setup_env.py`), which `backend_process.backend_root()`
finds there. No caches (`__pycache__`, `*.pyc`), no tests, no weights. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
MANIFEST = REPO / "blender_manifest.toml"
PACKAGE = REPO / "sheap_blender"
BACKEND_FILES = ("backend", "scripts/setup_env.py")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".so", ".tmp"}
DATA_SUFFIXES = {".py", ".txt", ".toml", ".md", ".json"}


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
    temporary.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    target = build(args.output_dir)
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    print(f"wrote {target} ({count} files, {target.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
