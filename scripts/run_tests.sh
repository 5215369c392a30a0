#!/usr/bin/env bash
# Run every test suite: lint, the backend's tests in .venv, the extension's under bpy 4.5, 5.x and 4.2 LTS,
# bake.py --ray's under bpy 4.5 with Ray.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== ruff"
.venv/bin/ruff check . || status=1
echo "== layout, core and backend tests (.venv, Python 3.11)"
.venv/bin/python -m pytest tests/test_layout.py tests/core tests/backend -q "$@" || status=1
for env in .venv-bpy45 .venv-bpy5 .venv-bpy42; do
  echo "== extension tests ($env: $($env/bin/python -c 'import sys; print("Python %d.%d" % sys.version_info[:2])'))"
  "$env/bin/python" -m pytest tests/blender -q "$@" || status=1
done
echo "== bake.py --ray tests (.venv-bpy45, the environment with Ray)"
.venv-bpy45/bin/python -m pytest tests/ray -q "$@" || status=1
exit $status
