"""Demo footage made on the spot: real faces (public-domain portraits that installed packages ship)
moving with a known motion, and a clip with no face at all. No download needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# The codecs a clip may be written with, in the order tried: MPEG-4 Part 2 (what every OpenCV build
# writes; the stand-ins and the tests use it), or H.264 first, as cameras and phones write (benchmarks:
# only where this OpenCV has an H.264 encoder; the pip wheels have none). `video_codec` names what a file is.
MPEG4_PART2 = ("mp4v",)
H264_WHERE_POSSIBLE = ("avc1", "H264", "mp4v")
CODEC_NAMES = {"avc1": "H.264", "h264": "H.264", "H264": "H.264", "x264": "H.264", "X264": "H.264",
               "mp4v": "MPEG-4 Part 2", "FMP4": "MPEG-4 Part 2", "MJPG": "Motion JPEG"}
_usable_fourcc: dict[tuple[str, tuple[str, ...]], str] = {}

FACE_CENTRE_IN_PORTRAIT = (245.0, 150.0)  # roughly the middle of the astronaut's face (512 x 512 image)


def usable_fourcc(suffix: str, fourccs: tuple[str, ...]) -> str:
    """The first of `fourccs` this OpenCV writes into a `suffix` file that reads back, frame for frame
    (tried once per process on a tiny clip; OpenCV's complaints about the others are silenced)."""
    key = (suffix, tuple(fourccs))
    if key not in _usable_fourcc:
        import tempfile

        from ..faces.landmarks import quiet_stderr

        for fourcc in fourccs:
            with tempfile.TemporaryDirectory() as tmp, quiet_stderr():
                probe = Path(tmp) / f"probe{suffix}"
                writer = cv2.VideoWriter(str(probe), cv2.VideoWriter_fourcc(*fourcc), 30.0, (64, 48))
                if not writer.isOpened():
                    continue
                for level in (40, 120, 200):
                    writer.write(np.full((48, 64, 3), level, np.uint8))
                writer.release()
                capture = cv2.VideoCapture(str(probe))
                read = 0
                while capture.read()[0]:
                    read += 1
                capture.release()
            if read == 3:
                _usable_fourcc[key] = fourcc
                break
        else:
            raise RuntimeError(f"OpenCV writes none of {', '.join(fourccs)} into {suffix} files")
    return _usable_fourcc[key]


def open_writer(path: Path, fps: float, size: tuple[int, int], fourccs: tuple[str, ...]) -> cv2.VideoWriter:
    """A video writer with the first usable of `fourccs` (`usable_fourcc`)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*usable_fourcc(path.suffix, fourccs)), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    return writer


def video_codec(path: str | Path) -> str:
    """What a video file's frames are encoded with, as OpenCV reads it: e.g. "H.264 (avc1)"."""
    capture = cv2.VideoCapture(str(path))
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    capture.release()
    fourcc = code.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ")
    return f"{CODEC_NAMES.get(fourcc, 'unknown codec')} ({fourcc or '?'})"


def astronaut_motion(n_frames: int, size: tuple[int, int]) -> np.ndarray:
    """(n, 2, 3) affine matrices portrait pixels -> frame pixels: pan, zoom and a few degrees of roll."""
    width, height = size
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    base = 0.55 * height / 280.0  # the face (about 280 px tall in the portrait) fills ~55% of the height
    scale = base * (1.0 + 0.18 * np.sin(2 * np.pi * t))  # zoom in, out, back
    angle = np.deg2rad(5.0) * np.sin(2 * np.pi * 1.5 * t)  # roll
    centre_x = width / 2 + 0.12 * width * np.sin(2 * np.pi * t + 0.6)  # pan
    centre_y = height / 2 + 0.06 * height * np.sin(2 * np.pi * 2 * t)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    fx, fy = FACE_CENTRE_IN_PORTRAIT
    matrices = np.empty((n_frames, 2, 3))
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, -sin
    matrices[:, 1, 0], matrices[:, 1, 1] = sin, cos
    matrices[:, 0, 2] = centre_x - (cos * fx - sin * fy)
    matrices[:, 1, 2] = centre_y - (sin * fx + cos * fy)
    return matrices


def write_demo_clip(directory: str | Path, n_frames: int = 90, fps: float = 30.0,
                    size: tuple[int, int] = (640, 480), fourccs: tuple[str, ...] = MPEG4_PART2) -> tuple[Path, Path]:
    """Write `astronaut.mp4` and `astronaut_motion.json` (per-frame 2x3 portrait->frame affines).

    `fourccs`: the codecs to try (`H264_WHERE_POSSIBLE`: H.264 where OpenCV can); `video_codec` says which."""
    from skimage import data

    directory = Path(directory)
    portrait = data.astronaut()
    matrices = astronaut_motion(n_frames, size)
    clip = directory / "astronaut.mp4"
    temporary = directory / ".astronaut.tmp.mp4"
    writer = open_writer(temporary, fps, size, fourccs)
    # OpenCV maps pixel centres at integers; the matrices use pixel i = [i, i+1]: shift by half a pixel
    for matrix in matrices:
        to_cv = matrix.copy()
        to_cv[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
        frame = cv2.warpAffine(portrait, to_cv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(28, 30, 34))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    temporary.replace(clip)
    motion = directory / "astronaut_motion.json"
    motion.write_text(json.dumps({
        "source": "skimage.data.astronaut() (512 x 512, public domain)",
        "convention": "frame_xy = M[:, :2] @ portrait_xy + M[:, 2]; pixel i spans [i, i+1]",
        "fps": fps, "size": list(size), "face_centre_in_portrait": FACE_CENTRE_IN_PORTRAIT,
        "frames": matrices.round(6).tolist(),
    }))
    return clip, motion


def write_faceless_clip(path: str | Path, n_frames: int = 30, fps: float = 30.0,
                        size: tuple[int, int] = (320, 240)) -> Path:
    """A clip with no face: drifting colour gradients and noise."""
    width, height = size
    rng = np.random.default_rng(3)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n_frames):
        phase = i / n_frames
        image = np.stack([np.sin(6 * x + phase * 6), np.cos(4 * y - phase * 3), np.sin(5 * (x + y))], axis=2)
        image = (image * 0.5 + 0.5) * 200 + rng.normal(0, 8, image.shape)
        writer.write(np.clip(image, 0, 255).astype(np.uint8))
    writer.release()
    return Path(path)


# the astronaut's 68 landmarks in the 512 x 512 portrait (measured once with MediaPipe): extent and centre
ASTRONAUT_FACE_PX = 92.0
ASTRONAUT_FACE_CENTRE = (225.0, 131.0)


@dataclass(frozen=True)
class Portrait:
    """A public-domain photograph of a real person and its face: the extent and centre of the face's
    landmarks (iBUG 68 layout, as `faces.landmarks` finds them), portrait pixels."""

    source: str
    face_px: float
    face_centre: tuple[float, float]

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        if self.source.startswith("skimage"):
            from skimage import data

            if "camera" in self.source:
                return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)
            return data.astronaut()
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


PORTRAITS = {
    "astronaut": Portrait("skimage.data.astronaut() (512 x 512, public domain)", ASTRONAUT_FACE_PX,
                          ASTRONAUT_FACE_CENTRE),
    # a US Navy photograph, shipped as matplotlib's sample data: an older woman, a studio portrait
    "hopper": Portrait("matplotlib sample data grace_hopper.jpg (512 x 600, public domain)", 188.2, (261.1, 245.9)),
    # grey, the head turned about 45 degrees to his left (a three-quarter view), a small face
    "cameraman": Portrait("skimage.data.camera() (512 x 512, CC0, Lav Varshney)", 60.8, (227.3, 166.7)),
}


@dataclass
class FaceInShot:
    """A real face in a shot: where (fractions of the frame), how large, how it moves, whose."""

    x: float
    y: float
    face_px: float  # extent of the face's landmarks in frame pixels at the shot's start
    pan: tuple[float, float] = (0.0, 0.0)  # displacement over the shot, fractions of the frame
    zoom: float = 0.0  # size at the shot's end = size x (1 + zoom)
    mirror: bool = False  # flipped left-right (still the same person to face recognition)
    person: str = "astronaut"  # a key of PORTRAITS
    light: float = 1.0  # the portrait's light multiplied by this (another day's light: 0.6 darker, 1.3 brighter)


@dataclass
class Shot:
    frames: int
    faces: list[FaceInShot]
    background: str = "rocket"  # a scikit-image photograph behind the faces
    dissolve: int = 0  # frames of a cross-dissolve from the shot before, over its last frames (0: a hard cut)


def write_scene_clip(path: str | Path, size: tuple[int, int], shots: list[Shot], fps: float = 30.0,
                     fourccs: tuple[str, ...] = MPEG4_PART2) -> Path:
    """A clip of real-photo shots with real faces placed small, moving; motion saved beside it.

    `path` + `.motion.json` holds, per frame, one 2x3 affine (portrait pixels -> frame pixels) per
    face of that frame's shot, in the order given (hard cuts between shots; where a shot dissolves in
    over the last frames of the one before, those frames list the faces of both, the outgoing first).
    The affine carries the face's own portrait: each face's landmarks (`PORTRAITS`) map through it onto the frame.
    `fourccs`: the codecs to try (`H264_WHERE_POSSIBLE`: H.264 where OpenCV can); `video_codec` says which.
    """
    from skimage import data

    path = Path(path)
    width, height = size
    motions: list[list[list[list[float]]]] = []
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = open_writer(temporary, fps, size, fourccs)
    # the last frames of the shot before, held back while a dissolve may need them: (frame, faces' affines)
    tail: list[tuple[np.ndarray, list[list[list[float]]]]] = []
    for number, shot in enumerate(shots):
        background = cv2.resize(getattr(data, shot.background)()[..., :3], size, interpolation=cv2.INTER_AREA)
        t = np.arange(shot.frames) / max(shot.frames - 1, 1)
        placed = []
        for face in shot.faces:
            person = PORTRAITS[face.person]
            portrait = np.clip(person.image() * np.float32(face.light), 0, 255).astype(np.uint8)
            portrait_width = portrait.shape[1]
            scale = face.face_px / person.face_px * (1 + face.zoom * t)
            centre_x = (face.x + face.pan[0] * t) * width
            centre_y = (face.y + face.pan[1] * t) * height
            matrices = np.zeros((shot.frames, 2, 3))
            flip = -1.0 if face.mirror else 1.0
            fx = (portrait_width - person.face_centre[0]) if face.mirror else person.face_centre[0]
            matrices[:, 0, 0], matrices[:, 1, 1] = flip * scale, scale
            matrices[:, 0, 2] = centre_x - scale * fx + (portrait_width * scale if face.mirror else 0.0)
            matrices[:, 1, 2] = centre_y - scale * person.face_centre[1]
            # antialiasing: blur the portrait as much as it is shrunk (a camera sees no aliasing)
            shrink = 1 / min(float(scale.min()), 1.0)
            source = cv2.GaussianBlur(portrait, (0, 0), 0.5 * np.sqrt(shrink ** 2 - 1)) if shrink > 1.05 else portrait
            mask = np.full(portrait.shape[:2], 255, np.uint8)
            placed.append((matrices, source, mask))
        dissolve = min(shot.dissolve, len(tail), shot.frames)
        for held in tail[:len(tail) - dissolve]:  # the shot before, up to where this one dissolves in
            writer.write(cv2.cvtColor(held[0], cv2.COLOR_RGB2BGR))
            motions.append(held[1])
        incoming = tail[len(tail) - dissolve:]
        tail = []
        keep = max((later.dissolve for later in shots[number + 1:number + 2]), default=0)
        for f in range(shot.frames):
            frame = background.copy()
            for matrices, source, mask in placed:
                to_cv = matrices[f].copy()  # pixel i spans [i, i+1]; OpenCV puts pixel centres at integers
                to_cv[:, 2] += matrices[f][:, :2] @ np.array([0.5, 0.5]) - 0.5
                warped = cv2.warpAffine(source, to_cv, size, flags=cv2.INTER_LINEAR)
                inside = cv2.warpAffine(mask, to_cv, size) > 127
                frame[inside] = warped[inside]
            motion = [matrices[f].round(6).tolist() for matrices, _, _ in placed]
            if f < dissolve:  # the shot before fades out as this one fades in: both shots' faces are listed
                weight = (f + 1) / (dissolve + 1)
                frame = cv2.addWeighted(incoming[f][0], 1 - weight, frame, weight, 0)
                motion = incoming[f][1] + motion
            if f >= shot.frames - keep:
                tail.append((frame, motion))
            else:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                motions.append(motion)
    for frame, motion in tail:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        motions.append(motion)
    writer.release()
    temporary.replace(path)
    people = sorted({face.person for shot in shots for face in shot.faces})
    Path(f"{path}.motion.json").write_text(json.dumps({
        "source": "; ".join(PORTRAITS[name].source for name in people) + ", over scikit-image photographs",
        "convention": "frame_xy = M[:, :2] @ portrait_xy + M[:, 2]; pixel i spans [i, i+1]",
        "people": [[face.person for face in shot.faces] for shot in shots],
        "fps": fps, "size": list(size), "frames": motions,
    }))
    return path


def set_mp4_rotation(path: str | Path, degrees: int) -> None:
    """Give an MP4 the display rotation a phone records (90 or 270) in its track header's matrix.

    Phones store portrait video as landscape frames plus this flag; OpenCV's writer cannot set it.
    """
    import struct

    path = Path(path)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    if at < 0:
        raise ValueError(f"{path}: no MP4 track header")
    version = data[at + 4]
    # after 'tkhd': version/flags, times and ids (64-bit times in version 1), reserved, layer, group, volume
    matrix_at = at + 4 + 4 + (8 + 8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4) + 8 + 8
    one = 1 << 16
    matrix = {90: (0, one, 0, -one, 0, 0, 0, 0, 1 << 30), 270: (0, -one, 0, one, 0, 0, 0, 0, 1 << 30)}[degrees]
    data[matrix_at:matrix_at + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
