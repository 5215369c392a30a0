"""Make the ARKit reference files the solve is calibrated and checked against, from their public sources.

    python scripts/make_arkit_references.py --ict ICT-FaceKit/FaceXModel --apple SAiD/ARKit_blendshapes

- `sheap_blender/core/arkit/data/ict_facekit_arkit.safetensors` (shipped): ICT-FaceKit's face and head
  (USC ICT, MIT licence, github.com/ICT-VGL/ICT-FaceKit): the generic neutral mesh's vertices 0..11247
  (face, head and neck) in metres, its polygons as triangles, its 53 ARKit-named expressions as vertex
  offsets (millimetres, float16), its 68 Multi-PIE landmark vertices (from its README) and its eyeball
  centres (the mean of each sclera).
- `tests/data/apple_arkit_reference.safetensors` (tests only): the second source, Apple's ARKit face
  mesh (1220 vertices) with 51 of the 52 shapes (no tongueOut) and its 68 landmark vertices, as
  published in the SAiD repository (github.com/yunik1004/SAiD, Apache-2.0, `data/`).

Both are made once by this script and committed; nothing is read from the network at run time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sheap_blender.core.arkit.names import ARKIT_NAMES, channel_for_key  # noqa: E402
from sheap_blender.core.safetensors_file import write_safetensors  # noqa: E402

ICT_KEPT_VERTICES = 11248  # face [0:9408] and head and neck [9409:11247] (ICT-FaceKit README)
ICT_FACE_VERTICES = 9409
ICT_SCLERA = ((21451, 22221), (23021, 23791))  # left, right (the subject's own), ICT-FaceKit README
ICT_LANDMARKS = (  # Multi-PIE 68, ICT-FaceKit README
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443, 268, 493,
    1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360, 1507, 1542,
    1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461,
    5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)
APPLE_LANDMARKS = (  # SAiD data/ARKit_landmarks.txt
    57, 376, 208, 905, 462, 921, 919, 916, 1047, 911, 908, 906, 1216, 1215, 1213, 807, 966, 198, 335, 327, 329, 348,
    781, 764, 762, 768, 647, 36, 12, 9, 7, 87, 307, 3, 742, 536, 1101, 1095, 1092, 1089, 1086, 1107, 1081, 1078, 1075,
    1069, 1063, 1084, 244, 108, 92, 21, 541, 557, 678, 713, 706, 28, 271, 278, 394, 95, 23, 544, 824, 708, 26, 273,
)


def read_obj(path: Path) -> tuple[np.ndarray, list[list[int]]]:
    """Vertices and polygons (0-based) of a Wavefront OBJ."""
    vertices, polygons = [], []
    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if line.startswith("v "):
                vertices.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                polygons.append([int(token.split("/")[0]) - 1 for token in line.split()[1:]])
    return np.array(vertices), polygons


def triangles(polygons: list[list[int]], n_vertices: int) -> np.ndarray:
    """Fan triangles of the polygons whose vertices are all below `n_vertices`."""
    out = [[p[0], p[i], p[i + 1]] for p in polygons if max(p) < n_vertices for i in range(1, len(p) - 1)]
    return np.array(out, dtype=np.int32)


def ict_reference(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    names = json.loads((folder / "vertex_indices.json").read_text())["expressions"]
    neutral, polygons = read_obj(folder / "generic_neutral_mesh.obj")
    offsets = np.stack([read_obj(folder / f"{name}.obj")[0] - neutral for name in names])
    eye_centres = np.stack([neutral[a:b].mean(0) for a, b in ICT_SCLERA]) / 100.0
    tensors = {
        "neutral": (neutral[:ICT_KEPT_VERTICES] / 100.0).astype(np.float32),  # cm -> m
        "triangles": triangles(polygons, ICT_KEPT_VERTICES),
        "offsets_mm": (offsets[:, :ICT_KEPT_VERTICES] * 10.0).astype(np.float16),  # cm -> mm
        "landmarks68": np.array(ICT_LANDMARKS, dtype=np.int32),
        "eye_centres": eye_centres.astype(np.float32),
    }
    metadata = {
        "format": "sheap-arkit-reference-1",
        "source": "ICT-FaceKit (USC Institute for Creative Technologies), github.com/ICT-VGL/ICT-FaceKit, FaceXModel",
        "license": "MIT (see ICT-FaceKit-LICENSE.txt beside this file)",
        "shape_names": json.dumps(names),
        "face_vertices": str(ICT_FACE_VERTICES),
        "units": "neutral, eye_centres: metres; offsets_mm: millimetres; +Y up, the face looks toward +Z",
    }
    return tensors, metadata


def apple_reference(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    neutral, polygons = read_obj(folder / "Neutral.obj")
    names = [name for name in ARKIT_NAMES if (folder / f"{name}.obj").is_file()]
    assert all(channel_for_key(name) == name for name in names)
    offsets = np.stack([read_obj(folder / f"{name}.obj")[0] - neutral for name in names])
    tensors = {
        "neutral": neutral.astype(np.float32),
        "triangles": triangles(polygons, len(neutral)),
        "offsets_mm": (offsets * 1000.0).astype(np.float16),
        "landmarks68": np.array(APPLE_LANDMARKS, dtype=np.int32),
    }
    metadata = {
        "format": "sheap-arkit-reference-1",
        "source": "Apple ARKit face mesh reference shapes as published in SAiD (github.com/yunik1004/SAiD, data/)",
        "license": "Apache-2.0 (SAiD repository)",
        "shape_names": json.dumps(names),
        "face_vertices": str(len(neutral)),
        "units": "neutral: metres; offsets_mm: millimetres; +Y up, the face looks toward +Z",
    }
    return tensors, metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ict", type=Path, required=True, help="ICT-FaceKit's FaceXModel folder")
    parser.add_argument("--apple", type=Path, required=True, help="SAiD's unpacked ARKit_blendshapes folder")
    args = parser.parse_args()
    targets = {
        REPO / "sheap_blender/core/arkit/data/ict_facekit_arkit.safetensors": ict_reference(args.ict),
        REPO / "tests/data/apple_arkit_reference.safetensors": apple_reference(args.apple),
    }
    for path, (tensors, metadata) in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_safetensors(path, tensors, metadata)
        print(f"{path.relative_to(REPO)}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
