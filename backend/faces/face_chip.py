"""dlib's aligned face chip (`dlib.get_face_chip`, 150 x 150, padding 0.25) from 68 landmarks, without dlib.

The face-recognition network was trained on chips cut exactly this way, so this follows dlib's
code step by step (dlib/image_transforms/interpolation.h: get_face_chip_details, chip_details,
extract_image_chips; dlib/geometry: find_similarity_transform, drectangle; image_pyramid.h):

1. a similarity transform (Umeyama least squares) from dlib's mean face template to 33 of the 68
   landmarks (eyes, nose, outer and upper-inner lips; brows, jaw and lower lip left out);
2. it becomes a rotated rectangle: centred on the transformed chip centre, side
   size * scale - 1 between its corner pixel centres (dlib's centred_drect);
3. a chip much smaller than the rectangle is cut from a level of dlib's 5x5 Gaussian pyramid
   (pyramid_down<2>, integer arithmetic) of the image around the face, mapped with dlib's own
   approximate rect_down;
4. each chip pixel samples bilinearly, truncated to 8 bits; one whose 2x2 neighbourhood is not
   wholly inside the image is black.

Sampling is done here in NumPy rather than with cv2.warpAffine / cv2.pyrDown: OpenCV quantises
bilinear weights to 1/32 and rounds, pads its pyramid by reflection and centres it differently,
which moves the chip by a grey level or so and the descriptor by more than 1e-3.

Landmarks use dlib's pixel convention: pixel (x, y) has its centre at (x, y). Detection's
`landmarks68` span [i, i + 1] per pixel, so pass `landmarks68 - 0.5` to match dlib exactly.
One face at a time is cut from its own neighbourhood, as `compute_face_descriptor` does.
"""

from __future__ import annotations

import numpy as np

# dlib's mean face shape, points 17..67 of the iBUG 68 layout, from get_face_chip_details in
# dlib/image_transforms/interpolation.h ("Average positions of face points 17-67").
MEAN_FACE_X = np.array([
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
])
MEAN_FACE_Y = np.array([
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
])
# the landmarks dlib fits to: 27..54 and 60..64 (it skips the brows 17..26 and lower lip 55..59, 65..67)
FIT_POINTS = np.r_[27:55, 60:65]
PYRAMID_SHIFT = np.array([1.25, 0.75])  # dlib's pyramid_down<2>::point_down: p / 2 - (1.25, 0.75)


def similarity_to_landmarks(landmarks68: np.ndarray, size: int, padding: float) -> np.ndarray:
    """(N, 2, 3) similarity transforms, chip pixels -> image pixels, fitted like dlib's find_similarity_transform."""
    template = np.stack([MEAN_FACE_X, MEAN_FACE_Y], axis=1)[FIT_POINTS - 17]
    source = (padding + template) / (2 * padding + 1) * size  # (K, 2) chip pixels
    target = np.asarray(landmarks68, dtype=np.float64)[:, FIT_POINTS]  # (N, K, 2)
    # Umeyama (1991), equations 34-43, as dlib/geometry/point_transforms.h computes them
    mean_source, mean_target = source.mean(axis=0), target.mean(axis=1)
    centred_source, centred_target = source - mean_source, target - mean_target[:, None]
    sigma_source = (centred_source ** 2).sum(axis=1).mean()
    cov = np.einsum("nki,kj->nij", centred_target, centred_source) / len(source)
    u, d, vt = np.linalg.svd(cov)
    s = np.ones_like(d)
    det_cov = np.linalg.det(cov)
    flip = (det_cov < 0) | ((det_cov == 0) & (np.linalg.det(u) * np.linalg.det(vt) < 0))
    s[flip, 1] = -1  # NumPy sorts singular values descending: the smaller one is flipped
    rotation = u @ (s[:, :, None] * vt)
    scale = (d * s).sum(axis=1) / sigma_source
    linear = scale[:, None, None] * rotation
    translation = mean_target - linear @ mean_source
    return np.concatenate([linear, translation[:, :, None]], axis=2)


def _rect_down(rect: np.ndarray, times: int = 1) -> np.ndarray:
    """dlib's pyramid_down<2>::rect_down of a (left, top, right, bottom) rectangle, `times` times."""
    for _ in range(times):
        rect = rect / 2 - np.tile(PYRAMID_SHIFT, 2)
    return rect


def _area(rect: np.ndarray) -> float:
    """dlib's drectangle area: (right - left + 1) * (bottom - top + 1)."""
    return float((rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1))


def pyramid_down(image: np.ndarray) -> np.ndarray:
    """One level of dlib's pyramid_down<2>: 5x5 binomial filter, every other pixel, floor of sum / 256."""
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return image[:0, :0]
    out_rows, out_cols = (rows - 3) // 2, (cols - 3) // 2
    weights = (1, 4, 6, 4, 1)
    pixels = image.astype(np.int32)
    # output pixel (r, c) sums input rows 2r..2r+4 and columns 2c..2c+4
    across = sum(w * pixels[:, i:i + 2 * out_cols:2] for i, w in enumerate(weights))
    down = sum(w * across[i:i + 2 * out_rows:2] for i, w in enumerate(weights))
    return (down // 256).astype(np.uint8)


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear at (x, y): truncated to uint8, black where a neighbour is outside."""
    if image.shape[0] < 2 or image.shape[1] < 2:
        return np.zeros((*x.shape, 3), np.uint8)
    left, top = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    inside = (left >= 0) & (top >= 0) & (left + 1 < image.shape[1]) & (top + 1 < image.shape[0])
    left, top = np.clip(left, 0, image.shape[1] - 2), np.clip(top, 0, image.shape[0] - 2)
    lr, tb = (x - left)[..., None], (y - top)[..., None]
    # gather the 2x2 neighbourhood in uint8 (only the chip's pixels are converted to float)
    tl, tr = image[top, left].astype(np.float64), image[top, left + 1].astype(np.float64)
    bl, br = image[top + 1, left].astype(np.float64), image[top + 1, left + 1].astype(np.float64)
    value = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    value[~inside] = 0
    return value.astype(np.uint8)


def _extract(rgb: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """One chip as dlib's extract_image_chips cuts it for the chip_details of `transform`."""
    linear, translation = transform[:, :2], transform[:, 2]
    angle = np.arctan2(linear[1, 0], linear[0, 0])
    scale = np.hypot(linear[0, 0], linear[1, 0])
    centre = linear @ np.full(2, size / 2) + translation
    half = (size * scale - 1) / 2  # centred_drect: width - 1 between the corner pixel centres
    rect = np.concatenate([centre - half, centre + half])  # left, top, right, bottom
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])

    def corners(r: np.ndarray) -> np.ndarray:
        """tl, tr, bl, br of rectangle r rotated by the chip's angle about its centre."""
        points = np.array([[r[0], r[1]], [r[2], r[1]], [r[0], r[3]], [r[2], r[3]]])
        middle = (r[:2] + r[2:]) / 2
        return (points - middle) @ rotation.T + middle

    # pyramid depth: halve while the halved rectangle still has more pixels than the chip
    depth, grow = 0, 2.0
    smaller = _rect_down(rect)
    while _area(smaller) > size * size:
        smaller, depth, grow = _rect_down(smaller), depth + 1, grow * 2 + 2
    # the region of the image the pyramid is built on: the rotated rectangle grown, clipped, rounded like lround
    rotated = corners(rect)
    region = np.concatenate([np.maximum(rotated.min(axis=0) - grow, 0),
                             np.minimum(rotated.max(axis=0) + grow, [rgb.shape[1] - 1, rgb.shape[0] - 1])])
    box = np.floor(region + 0.5).astype(int)  # lround; region is >= 0 where it is not empty
    if box[0] > box[2] or box[1] > box[3]:
        return np.zeros((size, size, 3), np.uint8)  # the face is wholly outside the image
    source = rgb[box[1]:box[3] + 1, box[0]:box[2] + 1]
    for _ in range(depth):
        source = pyramid_down(source)
    # chip corners (0, 0), (size-1, 0), (0, size-1) -> the rectangle's rotated corners in `source`
    tl, tr, bl, _ = corners(_rect_down(rect - np.tile(box[:2], 2), depth))
    steps = np.arange(size) / (size - 1)
    points = tl + steps[None, :, None] * (tr - tl) + steps[:, None, None] * (bl - tl)  # (row, col, xy)
    return _bilinear(source, points[..., 0], points[..., 1])


def face_chip(rgb: np.ndarray, landmarks68: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib's get_face_chip: (size, size, 3) uint8, or (N, size, size, 3) for (N, 68, 2) landmarks."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"face_chip needs an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    landmarks68 = np.asarray(landmarks68, dtype=np.float64)
    single = landmarks68.ndim == 2
    landmarks68 = landmarks68.reshape(-1, 68, 2)
    transforms = similarity_to_landmarks(landmarks68, size, padding)
    chips = np.stack([_extract(rgb, t, size) for t in transforms]) if len(transforms) else (
        np.zeros((0, size, size, 3), np.uint8))
    return chips[0] if single else chips
