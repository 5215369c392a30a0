"""Footage reading, face tracking and the crop, on real files and the astronaut clip's known motion."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.faces.crop import BoxSmoother, crop_image
from backend.footage.reader import open_footage
from backend.people.tracker import FaceTracker
from backend.pipeline import iterate_crops
from backend.standins.clip import (
    H264_WHERE_POSSIBLE,
    MPEG4_PART2,
    set_mp4_rotation,
    usable_fourcc,
    video_codec,
    write_demo_clip,
    write_faceless_clip,
)
from sheap_blender.core.errors import InputError


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    directory = tmp_path_factory.mktemp("clip")
    path, motion = write_demo_clip(directory)
    return path, np.array(json.loads(motion.read_text())["frames"])


def write_images(folder: Path, names: list[str], size=(48, 32)) -> list[np.ndarray]:
    folder.mkdir(exist_ok=True)
    images = []
    for i, name in enumerate(names):
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        rgb[..., 0] = i * 20  # each frame tells its number in the red channel
        rgb[5, 7] = (1, 2, 3)
        cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append(rgb)
    return images


def test_clips_say_what_codec_they_are(clip, tmp_path):
    """The stand-ins' clips are MPEG-4 Part 2; the benchmarks' are H.264 where this OpenCV writes it (checked by
    reading a probe clip back), else MPEG-4 Part 2; `video_codec` names what a file is, as OpenCV reads it."""
    assert usable_fourcc(".mp4", MPEG4_PART2) == "mp4v" and video_codec(clip[0]).startswith("MPEG-4 Part 2")
    chosen = usable_fourcc(".mp4", H264_WHERE_POSSIBLE)
    path, _ = write_demo_clip(tmp_path, n_frames=6, size=(160, 120), fourccs=H264_WHERE_POSSIBLE)
    expected = "H.264" if chosen in ("avc1", "H264") else "MPEG-4 Part 2"
    assert video_codec(path).startswith(expected), (chosen, video_codec(path))
    assert len(list(open_footage(path).frames())) == 6
    with pytest.raises(RuntimeError, match="writes none of"):
        usable_fourcc(".mp4", ("NONE",))


def test_video(clip):
    path, motion = clip
    footage = open_footage(path)
    assert (footage.kind, footage.width, footage.height, footage.frame_count) == ("video", 640, 480, len(motion))
    assert footage.fps == pytest.approx(30)
    frames = list(footage.frames(10, 13))
    assert [i for i, _ in frames] == [10, 11, 12]
    assert frames[0][1].shape == (480, 640, 3) and frames[0][1].dtype == np.uint8


def test_folder_in_natural_order_and_pattern(tmp_path):
    names = ["frame2.png", "frame10.png", "frame1.png"]
    write_images(tmp_path / "seq", names)
    footage = open_footage(tmp_path / "seq", fps=24)
    assert (footage.kind, footage.frame_count, footage.width, footage.height, footage.fps) == ("images", 3, 48, 32, 24)
    reds = [int(rgb[0, 0, 0]) for _, rgb in footage.frames()]
    assert reds == [40, 0, 20]  # frame1, frame2, frame10
    assert tuple(next(footage.frames())[1][5, 7]) == (1, 2, 3)  # RGB, not BGR

    write_images(tmp_path / "pat", [f"{i:04d}.png" for i in range(3, 8)])
    pattern = open_footage(str(tmp_path / "pat" / "%04d.png"))
    assert pattern.frame_count == 5 and pattern.fps == 30


def test_single_image(tmp_path):
    write_images(tmp_path, ["one.jpg"])
    footage = open_footage(tmp_path / "one.jpg")
    assert footage.kind == "image" and footage.frame_count == 1


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "empty folder", "bad image in sequence",
                                  "sizes differ", "pattern without match"])
def test_bad_footage_names_the_file(tmp_path, clip, case):
    named = tmp_path / "input.mp4"
    if case == "empty":
        named.write_bytes(b"")
    elif case == "text":
        named.write_text("not a video " * 100)
    elif case == "truncated":
        named.write_bytes(clip[0].read_bytes()[:1500])
    elif case == "empty folder":
        named = tmp_path / "nothing"
        named.mkdir()
        (named / "notes.txt").write_text("no images here")
    elif case == "bad image in sequence":
        write_images(tmp_path / "seq", ["a1.png", "a2.png"])
        (tmp_path / "seq" / "a3.png").write_bytes(b"\x89PNG broken")
        named = tmp_path / "seq" / "a3.png"
    elif case == "sizes differ":
        write_images(tmp_path / "seq", ["a1.png"])
        write_images(tmp_path / "seq", ["a2.png"], size=(20, 20))
        named = tmp_path / "seq" / "a2.png"
    elif case == "pattern without match":
        named = tmp_path / "%05d.png"
    with pytest.raises(InputError) as info:
        footage = open_footage(named.parent if case in ("bad image in sequence", "sizes differ") else named)
        list(footage.frames())
    assert str(named) in str(info.value) and "\n" not in str(info.value)


def test_crop_follows_the_known_motion(clip):
    """Through the pipeline's own tracking stage: every crop centre within 5% of the box size of where
    the motion puts it, size within 10%."""
    path, motion = clip
    frames = list(iterate_crops(open_footage(path), 0, None, threading.Event()))
    assert [frame.index for frame in frames] == list(range(len(motion))) and all(frame.valid for frame in frames)
    smoothed = np.array([frame.box for frame in frames])
    assert all(frame.crop.shape == (3, 224, 224) for frame in frames)
    centres = (smoothed[:, :2] + smoothed[:, 2:]) / 2
    sizes = smoothed[:, 2] - smoothed[:, 0]
    scales = np.sqrt(np.abs(np.linalg.det(motion[:, :, :2])))
    # the box in portrait pixels, as the motion says it should stay: one fixed box for the clip
    portrait_centres = np.linalg.solve(motion[:, :, :2], (centres - motion[:, :, 2])[..., None])[..., 0]
    reference_centre = np.median(portrait_centres, axis=0)
    reference_size = np.median(sizes / scales)
    expected_centres = np.einsum("fij,j->fi", motion[:, :, :2], reference_centre) + motion[:, :, 2]
    expected_sizes = reference_size * scales
    centre_error = np.linalg.norm(centres - expected_centres, axis=1) / expected_sizes
    size_error = np.abs(sizes - expected_sizes) / expected_sizes
    assert centre_error.max() < 0.05, centre_error.max()
    assert size_error.max() < 0.10, size_error.max()
    # and the box holds the face: the portrait's face centre lies well inside it (the box sits higher, by design)
    assert np.linalg.norm(reference_centre - [245, 150]) < 0.35 * reference_size


def test_smoother_has_no_lag_on_a_ramp_and_bounded_memory():
    smoother = BoxSmoother(radius=6)
    boxes = [np.array([10.0 + 3 * i, 20.0 - i, 110.0 + 3 * i, 120.0 - i]) for i in range(200)]
    out = []
    for box in boxes:
        out += smoother.push(box)
        assert len(smoother._window) <= 13
    out += smoother.flush()
    assert len(out) == 200
    assert np.abs(np.array(out) - np.array(boxes)).max() < 1e-6  # linear motion followed exactly, ends included


def test_smoother_gives_no_box_without_a_face_and_never_smooths_across_segments():
    smoother = BoxSmoother(radius=3)
    here, there = np.array([0.0, 0.0, 10.0, 10.0]), np.array([50.0, 0.0, 70.0, 20.0])
    sequence = [(None, 0), (None, 0)] + [(here, 0)] * 3 + [(None, 0)] + [(there, 1)] * 4
    out = []
    for box, segment in sequence:
        out += smoother.push(box, segment)
    out += smoother.flush()
    assert len(out) == len(sequence)
    assert [box is None for box in out] == [box is None for box, _ in sequence]  # no face, no crop
    assert all(np.allclose(box, here) for box in out[2:5])  # the next segment's boxes do not pull these
    assert all(np.allclose(box, there) for box in out[6:])


def test_faceless_clip_yields_no_detection(tmp_path):
    path = write_faceless_clip(tmp_path / "faceless.mp4")
    with FaceTracker() as tracker:
        results = [tracked for _, rgb in open_footage(path).frames() for tracked in tracker.track(rgb)]
        results += tracker.flush()
    assert len(results) == 30 and all(tracked.detection is None for tracked in results)


def test_crop_maps_a_known_point_exactly():
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[150, 250] = 255  # pixel (250, 150): centre at (250.5, 150.5)
    box = np.array([200.0, 100.0, 312.0, 212.0])  # 112 px -> 224: scale 0.5 (upsampling)
    crop = crop_image(rgb, box)
    peak = np.unravel_index(crop[0].argmax(), crop[0].shape)
    # crop pixel u shows footage x0 + u * 0.5: the dot [250, 251) spans crop [100, 102)
    assert peak[0] in (100, 101) and peak[1] in (100, 101)
    centroid = (np.indices(crop[0].shape) * crop[0]).reshape(2, -1).sum(axis=1) / crop[0].sum() + 0.5
    assert np.allclose(centroid, [(150.5 - 100) * 2, (250.5 - 200) * 2], atol=0.5)
    # a box out of the frame is padded, never moved: the dot stays where the box says
    shifted = crop_image(rgb, box - [240, 0, 240, 0])
    assert shifted[0].max() == 0.0 and shifted.shape == (3, 224, 224)


@pytest.mark.parametrize("n_frames", [1, 2, 5, 6, 7, 12, 13, 14])
def test_smoother_on_clips_shorter_and_longer_than_its_window(n_frames):
    smoother = BoxSmoother(radius=6)
    boxes = [np.array([10.0 + 2 * i, 20.0, 110.0 + 2 * i, 120.0]) for i in range(n_frames)]
    out = []
    for box in boxes:
        out += smoother.push(box)
    out += smoother.flush()
    assert len(out) == n_frames
    assert np.abs(np.array(out) - np.array(boxes)).max() < 1e-6  # each frame's own box, in order


def test_chosen_frames_are_the_frames_the_pipeline_reads(clip):
    """The Gaussians' colour frames must be the very images whose crops were predicted."""
    footage = open_footage(clip[0])
    streamed = dict(footage.frames(20, 70))
    chosen = footage.read_frames([69, 20, 45, 45])
    assert sorted(chosen) == [20, 45, 69]
    for index, image in chosen.items():
        assert np.array_equal(image, streamed[index])
    with pytest.raises(InputError, match="cannot be decoded"):
        footage.read_frames([5, footage.frame_count + 3])


def test_phone_video_with_a_rotation_flag_is_read_upright(tmp_path):
    """Phones store portrait video as landscape frames plus a rotation flag: the face must stand upright."""
    from skimage import data

    upright = cv2.copyMakeBorder(data.astronaut(), 64, 64, 0, 0, cv2.BORDER_CONSTANT, value=(30, 30, 30))  # 640x512
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    path = tmp_path / "phone.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (stored.shape[1], stored.shape[0]))
    for _ in range(4):
        writer.write(cv2.cvtColor(stored, cv2.COLOR_RGB2BGR))
    writer.release()
    set_mp4_rotation(path, 90)
    footage = open_footage(path)
    assert (footage.width, footage.height) == (512, 640)  # portrait, as the phone showed it
    frames = [rgb for _, rgb in footage.frames()]
    assert frames[0].shape == (640, 512, 3)
    assert np.abs(frames[0].astype(float) - upright).mean() < 6  # upright, not on its side
    assert footage.read_frames([2])[2].shape == (640, 512, 3)
    with FaceTracker() as tracker:
        assert tracker.track(frames[0])[0].detection is not None


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def test_scene_linear_images_read_as_a_display_shows_them(tmp_path):
    """OpenEXR (film plates) and Radiance HDR hold scene-linear floats: read as 8-bit sRGB, the values
    a display shows (highlights above 1 clip, NaN is black)."""
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    linear = srgb_to_linear(rgb)
    linear[0, 0] = (4.0, np.nan, -1.0)  # a highlight, a NaN and a negative value, as renders and plates have
    assert cv2.imwrite(str(tmp_path / "plate.exr"), cv2.cvtColor(linear, cv2.COLOR_RGB2BGR))
    assert cv2.imwrite(str(tmp_path / "plate.hdr"), cv2.cvtColor(np.nan_to_num(linear, nan=0.0).clip(0, None),
                                                                  cv2.COLOR_RGB2BGR))
    exr = next(open_footage(tmp_path / "plate.exr").frames())[1]
    assert exr.dtype == np.uint8 and tuple(exr[0, 0]) == (255, 0, 0)
    assert np.abs(exr[1:].astype(int) - rgb[1:]).max() <= 1  # float32 EXR: exact to rounding
    hdr = next(open_footage(tmp_path / "plate.hdr").frames())[1]
    assert np.abs(hdr[1:].astype(int) - rgb[1:]).mean() < 1.5  # RGBE keeps 8 bits of mantissa


def test_an_exr_plate_sequence_is_reconstructed_like_its_png_frames(demo, tmp_path):
    """An EXR sequence (a VFX plate) through the real `reconstruct`: the same faces and crops as the
    same frames saved as PNG."""
    from backend_command import backend

    from backend.standins.clip import FaceInShot, Shot, write_scene_clip
    from sheap_blender.core.result.result_format import read_result

    clip = write_scene_clip(tmp_path / "plate.mp4", (1920, 1080), [Shot(10, [FaceInShot(0.4, 0.45, 90,
                                                                                     pan=(0.1, 0.0))])])
    (tmp_path / "exr").mkdir()
    (tmp_path / "png").mkdir()
    for index, rgb in open_footage(clip).frames():
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(tmp_path / "exr" / f"plate.{index + 1001:04d}.exr"), srgb_to_linear(bgr))
        assert cv2.imwrite(str(tmp_path / "png" / f"plate.{index + 1001:04d}.png"), bgr)
    results = {}
    for kind in ("exr", "png"):
        out = tmp_path / f"{kind}.sheap.safetensors"
        completed = backend("reconstruct", tmp_path / kind, "-o", out, "--flame", demo / "flame.safetensors",
                            "--weights", demo / "demo_sheap_model.pt", "--batch-size", "8")
        assert completed.returncode == 0, completed.stderr[-3000:]
        results[kind] = read_result(out)
    exr, png = results["exr"], results["png"]
    assert exr.valid.all() and png.valid.all() and exr.n_frames == 10
    size = png.params["crop_box"][:, 2] - png.params["crop_box"][:, 0]
    assert np.abs(exr.params["crop_box"] - png.params["crop_box"]).max() < 0.01 * size.min()


def _video_at(path: Path, fps: float, frames: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def test_a_container_saying_1000_fps_is_one_line_naming_the_file_and_nothing_is_written(tmp_path):
    """A real MP4 whose header and timestamps both say 1000 fps: a clear error, not a thousand-frame buffer."""
    from backend_command import backend

    clip = _video_at(tmp_path / "bogus_rate.mp4", 1000.0)
    assert cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS) == pytest.approx(1000)  # the premise
    with pytest.raises(InputError, match="1000 fps"):
        open_footage(clip)
    out = tmp_path / "who.people.json"
    completed = backend("people", clip, "-o", out)
    assert completed.returncode == 2 and not out.exists()
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and str(clip) in lines[0] and "1000 fps" in lines[0]


@pytest.mark.parametrize("fps", [0.5, 24.0, 120.0, 240.0])
def test_a_cameras_frame_rate_is_read_as_it_is(tmp_path, fps):
    assert open_footage(_video_at(tmp_path / "rate.mp4", fps)).fps == pytest.approx(fps)
