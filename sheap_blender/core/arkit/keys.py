"""ARKit's 52 shape keys made for a head mesh that has none, from the shipped reference (ICT-FaceKit).

Given the target's vertices, triangles and its 68 landmarks (Multi-PIE layout, points on its surface):
1. a similarity (Umeyama) on the 68 landmarks and a regularised thin-plate warp near the inner ones
   (eyes, nose, lips) lay the reference's face over the target's (a refinement on closest-point pairs,
   as in non-rigid ICP, was tried and made the warp fold: benchmarks/arkit_keys.py measured it worse);
2. every reference shape is carried through the same warp (the warped displaced face minus the warped
   neutral one): its offsets are turned, scaled and stretched as the warp stretches the face there, so a
   blink brings the upper lid down onto where the warp put the *target's* lower lid;
3. every vertex of the face's skin (the connected part the landmarks lie on: eyeballs, teeth and other
   parts of their own are left as they are) reads the shapes at its closest point of the warped reference
   face that faces the same way, on the same side of the mouth and of each eye (an upper lip never reads
   a lower lip's offsets: near the line between them the side is told by the way the surface faces); the
   influence fades out with distance instead of stopping at an edge;
4. each eye's blink is then finished on the target's own lids: the upper lid's offsets are scaled so that
   its margin meets the lower lid's (lid contact from the target's own geometry).
A mesh wound inside out is read as if it were not. Shapes with halves in the reference (browInnerUp_L/_R)
are summed into their channel; tongueOut has no source and is made as an empty key. Pure NumPy;
`benchmarks/arkit_keys.py` measures it against authored keys (docs/arkit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh_transfer import (
    Similarity,
    closest_surface_points,
    connected_components,
    fit_similarity,
    thin_plate_warp,
    vertex_normals,
)
from .names import ARKIT_INDEX, ARKIT_NAMES
from .reference import ArkitReference, load_reference

# Distances are in units of the target's interocular distance (eye centre to eye centre, about 63 mm on
# an adult), so that a head modelled in centimetres or at any scale is treated alike.
NEAR = 0.12  # a vertex this close to the warped reference face takes its offsets in full ...
FAR = 0.30  # ... fading to none at this distance
MIN_FACING = 0.0  # the target's normal and the reference surface's it reads must not point apart
CANDIDATES = 16  # nearest reference vertices whose triangles are searched for each closest point
# The warp goes through the nose, eye and lip landmarks (27-67), which every face defines alike; the jaw
# line's (0-16) and the brows' (17-26) are placed differently by each source (a contour seen from the
# front, a brow's edge or its middle), and met exactly they bend the forehead and chin:
# benchmarks/arkit_keys.py measured the median cosine 0.83 with all 68, 0.85 with these.
WARPED_LANDMARKS = range(27, 68)
# The warp is regularised (interocular units): it passes near the landmarks rather than through them, so
# a few millimetres of difference in where two sources put a lip corner do not fold the lips
# (benchmarks/arkit_keys.py: median 0.854 -> 0.857 on known landmarks, 0.849 -> 0.860 on found ones).
WARP_SMOOTHING = 0.3
MOVING = 1e-5  # metres in the reference: offsets smaller than this are left out of the warp


@dataclass(frozen=True)
class MadeKeys:
    """The 52 ARKit keys for one mesh: offsets per key (ARKIT_NAMES order) and each vertex's coverage."""

    names: tuple[str, ...]
    offsets: np.ndarray  # (52, V, 3) in the target's units
    influence: np.ndarray  # (V,) 0..1: how much of the reference's motion each vertex takes
    landmarks: np.ndarray  # (68, 3) the landmarks the keys were made from, on the face's skin
    other_parts: int = 0  # separate parts of the mesh off the face's skin, left unmoved (eyes, teeth)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the two eyes' landmark centres (Multi-PIE 36-41 and 42-47)."""
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


@dataclass(frozen=True)
class FaceWarp:
    """The reference placed on the target: similarity, then a thin-plate warp through control points."""

    similarity: Similarity
    control: np.ndarray  # (C, 3) placed reference points
    destination: np.ndarray  # (C, 3) where the warp takes them
    smoothing: float

    def apply(self, reference_points: np.ndarray) -> np.ndarray:
        return thin_plate_warp(self.control, self.destination, self.similarity.apply(reference_points),
                               self.smoothing)


def fit_face_warp(reference: ArkitReference, landmarks: np.ndarray) -> FaceWarp:
    """The similarity on all 68 landmarks, the thin-plate warp through the inner ones (WARPED_LANDMARKS)."""
    ref_marks = reference.neutral[reference.landmarks68]
    similarity = fit_similarity(ref_marks, landmarks)
    inner = list(WARPED_LANDMARKS)
    return FaceWarp(similarity, similarity.apply(ref_marks[inner]), landmarks[inner],
                    WARP_SMOOTHING * interocular(landmarks))


# Where the two sides of an opening meet: (first corner, upper points, second corner, lower points),
# Multi-PIE 68 ids. The region codes are 2k+1 above the k-th opening's line and 2k+2 below it.
OPENINGS = (
    (48, (61, 62, 63), 54, (67, 66, 65)),  # the mouth: its line is between the inner lips, out to the outer corners
    (36, (37, 38), 39, (41, 40)),  # the face's right eye
    (42, (43, 44), 45, (47, 46)),  # the face's left eye (ARKit's Left, +X)
)
OPENING_REACH = ((0.15, 0.5), (0.25, 0.7), (0.25, 0.7))  # each box's margin beyond the corners, height, in widths
LINE_BAND = 0.05  # of the opening's width: near its line, the side is told by the way the surface faces


def opening_sides(points: np.ndarray, marks: np.ndarray, normals: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Region code of each point (face frame: +Y up): 0, or which side of the mouth's / an eye's line it is on;
    and its closeness to that line (1 on it, 0 at the region's top or bottom).

    With `normals`, a point within LINE_BAND of the line is told by the way it faces instead: where lips or
    lids touch, the upper one's underside faces down and the lower one's top faces up, which the
    landmarks' line (a millimetre off, found on a render) cannot tell apart."""
    codes = np.zeros(len(points), dtype=np.int64)
    closeness = np.zeros(len(points))
    for k, ((first, upper, second, lower), (margin, height)) in enumerate(zip(OPENINGS, OPENING_REACH)):
        line = np.array([marks[first], *(marks[list(upper)] + marks[list(lower)]) / 2, marks[second]])
        line = line[np.argsort(line[:, 0])]
        width = abs(marks[second, 0] - marks[first, 0])
        mid_y = np.interp(points[:, 0], line[:, 0], line[:, 1])
        inside = ((points[:, 0] > line[0, 0] - margin * width) & (points[:, 0] < line[-1, 0] + margin * width)
                  & (np.abs(points[:, 1] - mid_y) < height * width) & (codes == 0))
        above = points[:, 1] >= mid_y
        if normals is not None:
            band = np.abs(points[:, 1] - mid_y) < LINE_BAND * width
            above = np.where(band, normals[:, 1] < 0, above)
        codes[inside] = np.where(above[inside], 2 * k + 1, 2 * k + 2)
        closeness[inside] = 1.0 - np.abs(points[inside, 1] - mid_y[inside]) / (height * width)
    return codes, closeness


def _opposite(code: int) -> int:
    return 0 if code == 0 else code + 1 if code % 2 else code - 1


def _warped_offsets(warp: FaceWarp, reference: ArkitReference) -> np.ndarray:
    """(S, F, 3): each reference shape's face offsets carried through the warp (displaced minus neutral)."""
    face = reference.neutral[:reference.face_vertices]
    offsets = reference.offsets[:, :reference.face_vertices]
    moving = np.linalg.norm(offsets, axis=2) > MOVING  # (S, F)
    shape, vertex = np.nonzero(moving)
    warped = warp.apply(np.concatenate([face, face[vertex] + offsets[shape, vertex]]))
    out = np.zeros_like(offsets)
    out[shape, vertex] = warped[len(face):] - warped[vertex]
    return out


@dataclass(frozen=True)
class TargetHead:
    """The head the keys are made for, with what every step needs of it."""

    vertices: np.ndarray  # (V, 3)
    triangles: np.ndarray  # (T, 3)
    landmarks: np.ndarray  # (68, 3)
    normals: np.ndarray  # (V, 3) unit, outward (turned round for a mesh wound inside out)
    skin: np.ndarray  # (V,) bool: the connected part the face's landmarks lie on

    @property
    def other_parts(self) -> int:
        """Separate parts of the mesh off the face's skin (eyeballs, teeth, a tongue): left as they are."""
        return int(np.unique(self.parts[~self.skin]).size) if (~self.skin).any() else 0

    @property
    def parts(self) -> np.ndarray:
        return connected_components(self.triangles, len(self.vertices))


def target_head(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray, reference: ArkitReference
                ) -> TargetHead:
    """The part the face is on (the one most landmarks lie on), the landmarks put onto it (one found on an
    eyeball seen through the lids goes to the skin nearest it), and the mesh's outward normals."""
    at_marks = closest_surface_points(landmarks, vertices, triangles)
    parts = connected_components(triangles, len(vertices))
    marked = parts[triangles[at_marks.triangle, 0]]
    values, counts = np.unique(marked, return_counts=True)
    skin = parts == values[np.argmax(counts)]
    skin_triangles = triangles[skin[triangles[:, 0]]]
    on_skin = closest_surface_points(landmarks, vertices, skin_triangles)
    landmarks = on_skin.sample(skin_triangles, vertices[None])[0]
    normals = vertex_normals(vertices, triangles)
    # the face looks toward +Z in the reference's frame: a mesh whose normals mostly point back is inside out
    rotation = fit_similarity(reference.neutral[reference.landmarks68], landmarks).rotation
    facing = on_skin.sample(skin_triangles, normals[None])[0] @ rotation
    if np.median(facing[27:68, 2]) < 0:
        normals = -normals
    return TargetHead(vertices, triangles, landmarks, normals, skin)


def _read_shapes(head: TargetHead, warp: FaceWarp, reference: ArkitReference, shapes: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(S, V, 3) the warped shapes read at each skin vertex's closest point, and (V,) the influence."""
    vertices, landmarks, target_normals = head.vertices, head.landmarks, head.normals
    face = reference.neutral[:reference.face_vertices]
    face_triangles = reference.face_triangles
    warped = warp.apply(face)
    # sides are told in the reference's own frame (+Y up), where the target is put back by the similarity
    similarity = warp.similarity
    back = (vertices - similarity.translation) @ similarity.rotation / similarity.scale
    back_marks = (landmarks - similarity.translation) @ similarity.rotation / similarity.scale
    target_codes = np.where(head.skin, opening_sides(back, back_marks, target_normals @ similarity.rotation)[0], -1)
    ref_codes = opening_sides(face, face[reference.landmarks68], vertex_normals(face, face_triangles))[0]
    triangle_codes = ref_codes[face_triangles]
    out = np.zeros((len(shapes), len(vertices), 3))
    influence = np.zeros(len(vertices))
    scale = interocular(landmarks)
    for code in np.unique(target_codes[head.skin]):
        group = np.flatnonzero(target_codes == code)
        allowed = face_triangles[~(triangle_codes == _opposite(int(code))).any(axis=1)] if code else face_triangles
        # only surface that faces the same way counts: a lid's outside never reads its inside (or the eyeball's)
        surface = closest_surface_points(vertices[group], warped, allowed, candidates=CANDIDATES,
                                         point_normals=target_normals[group], min_facing=MIN_FACING)
        influence[group] = np.clip((FAR * scale - surface.distance) / ((FAR - NEAR) * scale), 0.0, 1.0)
        out[:, group] = surface.sample(allowed, shapes) * influence[group, None]
    return out, influence


BLINK_GAIN = (0.5, 3.0)  # the lid-contact correction's bounds


def close_lids(keys: np.ndarray, head: TargetHead, similarity: Similarity) -> None:
    """Finish each blink on the target's own lids: the upper lid's margin meets the lower lid's (in place).

    The upper lid's offsets are scaled so that its margin landmarks (37-38, 43-44) end where the lower
    lid's (41-40, 47-46) end in the same key: fully from the margin's height down, fading toward the brow.
    """
    vertices, triangles, landmarks = head.vertices, head.triangles, head.landmarks
    back = (vertices - similarity.translation) @ similarity.rotation / similarity.scale
    back_marks = (landmarks - similarity.translation) @ similarity.rotation / similarity.scale
    codes, closeness = opening_sides(back, back_marks)
    mark_closeness = opening_sides(back_marks, back_marks)[1]
    at_marks = closest_surface_points(landmarks, vertices, triangles)
    for k, name in ((1, "eyeBlinkRight"), (2, "eyeBlinkLeft")):
        key = keys[ARKIT_INDEX[name]]
        _, upper, _, lower = OPENINGS[k]
        moved = at_marks.sample(triangles, key[None])[0]
        u, du = landmarks[list(upper)].mean(0), moved[list(upper)].mean(0)
        lo, dl = landmarks[list(lower)].mean(0), moved[list(lower)].mean(0)
        if du @ du < 1e-20:
            continue
        gain = float(np.clip((lo + dl - u) @ du / (du @ du), *BLINK_GAIN))
        lid = codes == 2 * k + 1
        # the whole gain from the margin's height down (the lid's rim), fading to none at the region's top
        margin = max(float(mark_closeness[list(upper)].mean()), 1e-6)
        key[lid] *= (1.0 + (gain - 1.0) * np.minimum(closeness[lid] / margin, 1.0))[:, None]


def make_arkit_keys(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray,
                    reference: ArkitReference | None = None) -> MadeKeys:
    """The 52 ARKit keys for the head mesh (vertices, triangles) whose 68 landmarks are given (see the module)."""
    reference = reference or load_reference()
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 3) or not np.isfinite(landmarks).all():
        raise ValueError(f"68 finite 3D landmarks are needed, not an array of shape {landmarks.shape}")
    if interocular(landmarks) <= 0:
        raise ValueError("the landmarks of the two eyes coincide")
    head = target_head(vertices, triangles, landmarks, reference)
    warp = fit_face_warp(reference, head.landmarks)
    shapes, influence = _read_shapes(head, warp, reference, _warped_offsets(warp, reference))
    keys = np.zeros((len(ARKIT_NAMES), len(vertices), 3))
    np.add.at(keys, [ARKIT_INDEX[c] for c in reference.channels], shapes)
    close_lids(keys, head, warp.similarity)
    return MadeKeys(ARKIT_NAMES, keys, influence, head.landmarks, head.other_parts)


NAMING_HABITS = ("arkit", "upper_camel", "suffix")  # eyeBlinkLeft, EyeBlinkLeft, eyeBlink_L


def key_name(channel: str, habit: str = "arkit") -> str:
    """The shape key name for an ARKit channel in a naming habit (each reads back through channel_for_key)."""
    if habit == "upper_camel":
        return channel[0].upper() + channel[1:]
    if habit == "suffix":
        for side, short in (("Left", "_L"), ("Right", "_R")):
            if channel.endswith(side):
                return channel[: -len(side)] + short
        return channel
    if habit != "arkit":
        raise ValueError(f"unknown naming habit {habit!r} (one of {', '.join(NAMING_HABITS)})")
    return channel
