"""Create the project's Python environments; standard library only, safe to run again.

    python3 scripts/setup_env.py backend   # .venv: the backend (what Blender's "Set up backend" runs)
    python3 scripts/setup_env.py run       # the backend plus bpy 4.5 as a module (`make run` bakes a .blend)
    python3 scripts/setup_env.py run --ray # ... plus Ray in .venv-bpy45, for `bake.py --ray` (batches on a cluster)
    python3 scripts/setup_env.py test      # the backend plus test tools, bpy 4.5 (with Ray), 5.2 and 4.2

Progress goes to stdout one line per step ("setup: ..."), so Blender can show it.
Each environment keeps a stamp of the requirements it was built from; an unchanged one is skipped.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def find_python(version: str) -> str:
    """Path of a Python interpreter of the given major.minor version, or exit with a clear line."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYENV_VERSION": ""} if "pyenv" not in candidate else os.environ,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    sys.exit(f"setup: Python {version} was not found; the backend needs it (torch and MediaPipe's wheels): install it "
             f"(pyenv install {version}, brew install python@{version}, apt install python{version} or python.org) "
             "and run again")


def build_env(venv: Path, python_version: str, requirement_files: list[Path]) -> Path:
    """Create `venv` with `python_version` if needed and install each requirement file not yet in it."""
    python = _venv_python(venv)
    if not python.exists():
        interpreter = find_python(python_version)
        print(f"setup: creating {venv.name} with Python {python_version}", flush=True)
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    for req in requirement_files:
        stamp = venv / f".installed-{req.parent.name}-{req.stem}"
        digest = hashlib.sha256(req.read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == digest:
            continue
        print(f"setup: installing {req.relative_to(REPO)} into {venv.name} (this can take minutes)", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
             "-r", str(req)],
            check=True,
        )
        stamp.write_text(digest)
    print(f"setup: {venv.name} ready", flush=True)
    return python


BACKEND_REQUIREMENTS = REPO / "backend" / "requirements.txt"
RAY_REQUIREMENTS = REPO / "scripts" / "requirements-ray.txt"  # bake.py --ray; optional for `run`, always for `test`


def setup_backend(gsplat: bool = False, venv: Path | None = None) -> Path:
    reqs = [BACKEND_REQUIREMENTS]
    if gsplat:
        reqs.append(REPO / "backend" / "requirements-cuda.txt")
    return build_env(venv or REPO / ".venv", "3.11", reqs)


def setup_run(ray: bool = False) -> None:
    setup_backend()
    bake_requirements = [REPO / "tests" / "requirements-bpy45.txt"] + ([RAY_REQUIREMENTS] if ray else [])
    build_env(REPO / ".venv-bpy45", "3.11", bake_requirements)


def setup_test() -> None:
    build_env(REPO / ".venv", "3.11", [BACKEND_REQUIREMENTS, REPO / "requirements-dev.txt"])
    build_env(REPO / ".venv-bpy45", "3.11", [REPO / "tests" / "requirements-bpy45.txt", RAY_REQUIREMENTS])
    build_env(REPO / ".venv-bpy5", "3.13", [REPO / "tests" / "requirements-bpy5.txt"])
    build_env(REPO / ".venv-bpy42", "3.11", [REPO / "tests" / "requirements-bpy42.txt"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["backend", "run", "test"])
    parser.add_argument("--gsplat", action="store_true", help="also install gsplat (CUDA machines)")
    parser.add_argument("--venv", type=Path, help="where to make the backend environment (default: .venv here)")
    parser.add_argument("--ray", action="store_true",
                        help="with `run`: also install Ray into .venv-bpy45, for `bake.py --ray` (`test` always does)")
    args = parser.parse_args()
    if args.ray and args.what != "run":
        parser.error("--ray goes with `run` (`test` installs Ray anyway; the backend does not use it)")
    try:
        if args.what == "backend":
            python = setup_backend(args.gsplat, args.venv)
            print(f"setup: backend Python is {python}", flush=True)
        elif args.what == "run":
            setup_run(args.ray)
        else:
            setup_test()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"setup: step failed (exit {exc.returncode}): {' '.join(map(str, exc.cmd))}")


if __name__ == "__main__":
    main()
