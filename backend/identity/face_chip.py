"""The aligned face chip dlib's face-recognition network reads (`dlib.get_face_chip`, 150 x 150, padding 0.25).

The network was trained on chips cut by dlib's get_face_chip_details (dlib/image_transforms/
interpolation.h): a similarity transform (Umeyama least squares) from dlib's mean face template to
33 of the 68 landmarks (eyes, nose, outer and upper-inner lips; brows, jaw and lower lip left
out), which places the face in the chip with `padding` of its size around it. The transform is
fitted exactly as dlib fits it; the pixels are then sampled with OpenCV (bilinear, and for a face
more than twice the chip's scale a Gaussian pyramid first, as dlib does), which is
some ten times cheaper than dlib's own sampling and moves a chip by about a grey level: the
descriptors stay within a few hundredths of dlib's (tests/backend/identity/test_face_net.py), against
same-person distances of 0.4 and more.

Landmarks use dlib's pixel convention: pixel (x, y) has its centre at (x, y). Detection's
`landmarks68` span [i, i + 1] per pixel, so pass `landmarks68 - 0.5`.
"""

from __future__ import annotations

import cv2
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


def _extract(rgb: np.ndarray, similarity: np.ndarray, size: int) -> np.ndarray:
    """One chip for the fitted `similarity` (chip -> image); what falls outside the image is black."""
    # dlib's chip_details: a rectangle centred on the similarity's image of the chip centre, turned
    # with it, spanning size * scale - 1 between its corner pixel centres; chip pixels sample it evenly
    linear = similarity[:, :2]
    scale = float(np.hypot(linear[0, 0], linear[1, 0]))
    step = (size * scale - 1) / (size - 1) / scale  # chip pixel -> image pixel, as a factor of `linear`
    centre = linear @ np.full(2, size / 2) + similarity[:, 2]
    transform = np.concatenate([linear * step, (centre - linear @ np.full(2, (size - 1) / 2) * step)[:, None]], axis=1)
    corners = transform @ np.array([[0, size - 1, 0, size - 1], [0, 0, size - 1, size - 1], [1, 1, 1, 1]], float)
    low = np.maximum(np.floor(corners.min(axis=1)) - 2, 0).astype(int)
    high = np.minimum(np.ceil(corners.max(axis=1)) + 3, [rgb.shape[1], rgb.shape[0]]).astype(int)
    if np.any(high - low < 2):
        return np.zeros((size, size, 3), np.uint8)  # the face is (almost) wholly outside the image
    region = rgb[low[1]:high[1], low[0]:high[0]]
    transform = transform.copy()
    transform[:, 2] -= low
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))  # image pixels per chip pixel
    while scale > 2 and min(region.shape[:2]) > 8:
        # much larger than the chip: halve it first with a 5x5 binomial filter, as dlib's image pyramid
        # does (no aliasing); OpenCV's level keeps pixel 2i's centre as pixel i's
        region = cv2.pyrDown(region)
        transform = transform / 2
        scale /= 2
    return cv2.warpAffine(region, transform, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def face_chip(rgb: np.ndarray, landmarks68: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib's get_face_chip: (size, size, 3) uint8, or (N, size, size, 3) for (N, 68, 2) landmarks."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"face_chip needs an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    landmarks68 = np.asarray(landmarks68, dtype=np.float64)
    single = landmarks68.ndim == 2
    transforms = similarity_to_landmarks(landmarks68.reshape(-1, 68, 2), size, padding)
    chips = np.stack([_extract(rgb, t, size) for t in transforms]) if len(transforms) else (
        np.zeros((0, size, size, 3), np.uint8))
    return chips[0] if single else chips
