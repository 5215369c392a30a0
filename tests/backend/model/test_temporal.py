"""Temporal clean-up on synthetic trajectories with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.model.temporal import (
    Smoothing,
    aggregate_identity,
    clean_params,
    fill_gaps,
    fill_segments,
    find_outliers,
    sigma_frames,
    smooth,
)
from sheap_blender.core.result.result_format import PER_FRAME

FPS = 30.0
RNG = np.random.default_rng(7)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_smoothing_cuts_noise_by_40_percent():
    t = np.arange(300) / FPS
    truth = np.stack([0.5 * np.sin(2 * np.pi * 0.4 * t), 0.3 * np.cos(2 * np.pi * 0.7 * t)], axis=1)
    noisy = truth + RNG.normal(0, 0.05, truth.shape)
    smoothed = smooth(noisy, sigma_frames(0.5, FPS))
    assert rms(smoothed, truth) <= 0.6 * rms(noisy, truth)


def test_a_step_is_not_delayed():
    step = np.zeros((120, 1))
    step[60:] = 1.0
    for strength in (0.5, 1.0):
        smoothed = smooth(step + RNG.normal(0, 0.01, step.shape), sigma_frames(strength, FPS))[:, 0]
        half_way = int(np.argmax(smoothed >= 0.5))
        assert abs(half_way - 60) <= 2, (strength, half_way)


def test_rotations_crossing_pi_do_not_flip():
    angles = np.linspace(np.deg2rad(170), np.deg2rad(190), 90)
    truth = Rotation.from_euler("z", angles[:, None])
    rotvec = truth.as_rotvec()
    assert np.abs(np.diff(rotvec[:, 2])).max() > 5  # axis-angle itself jumps from +pi to -pi
    noisy = (Rotation.from_rotvec(RNG.normal(0, 0.01, (90, 3))) * truth).as_rotvec()
    smoothed = smooth(noisy, sigma_frames(0.5, FPS), rotation=True)
    error = (Rotation.from_rotvec(smoothed) * truth.inv()).magnitude()
    noisy_error = (Rotation.from_rotvec(noisy) * truth.inv()).magnitude()
    assert error.max() < np.deg2rad(2)  # no frame flipped or wandered
    assert np.sqrt(np.mean(error**2)) <= 0.6 * np.sqrt(np.mean(noisy_error**2))


def test_gaps_are_filled_by_slerp():
    truth = Rotation.from_euler("xyz", np.stack([np.linspace(0, 1.2, 40), np.linspace(0, -0.6, 40),
                                                   np.zeros(40)], axis=1))
    valid = np.ones(40, dtype=bool)
    valid[10:20] = False
    rotvec = truth.as_rotvec()
    rotvec[~valid] = 0.0  # whatever the model said on frames without a face
    filled = fill_gaps(rotvec, valid, rotation=True)
    # slerp between frames 9 and 20: constant angular speed along the geodesic
    start, end = Rotation.from_rotvec(filled[9]), Rotation.from_rotvec(filled[20])
    relative = (start.inv() * end).as_rotvec()
    for i, frame in enumerate(range(10, 20), start=1):
        expected = start * Rotation.from_rotvec(relative * i / 11)
        assert (Rotation.from_rotvec(filled[frame]) * expected.inv()).magnitude() < 1e-9
    assert np.array_equal(filled[valid], rotvec[valid])


def test_linear_gap_filling_holds_at_the_ends():
    values = np.arange(10, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], dtype=np.float32)
    valid = np.ones(10, dtype=bool)
    valid[[0, 1, 5, 9]] = False
    filled = fill_gaps(values, valid)
    assert filled[0].tolist() == filled[1].tolist() == values[2].tolist()
    assert filled[5].tolist() == values[5].tolist()  # midway between 4 and 6
    assert filled[9].tolist() == values[8].tolist()


def test_one_frame_spike_is_an_outlier_but_a_step_is_not():
    values = np.cumsum(RNG.normal(0, 0.01, (100, 3)), axis=0)
    values[30] += 1.0  # a spike the neighbours contradict
    values[60:] += 1.0  # a real change: the next frames agree with it
    outliers = find_outliers(values, np.ones(100, dtype=bool))
    assert outliers.tolist() == [i == 30 for i in range(100)]


def _params(n: int) -> dict[str, np.ndarray]:
    return {name: RNG.normal(0, 0.1, (n, width)).astype(np.float32) for name, width in PER_FRAME.items()
            if name != "crop_box"}


def test_clean_params_replaces_outliers_and_smooths_by_group():
    params = _params(60)
    params["jaw_pose"][20] = [2.0, 0, 0]  # a jaw spike
    params["expr"][40] += 3.0  # an expression spike
    valid = np.ones(60, dtype=bool)
    cleaned, outliers = clean_params(params, valid, Smoothing(0.0, {"expression": 1.0}), FPS)
    assert outliers[40] and not outliers[20]  # spikes are judged only where a group is smoothed
    assert np.abs(cleaned["expr"][40] - params["expr"][40]).max() > 2.0
    assert np.array_equal(cleaned["jaw_pose"], params["jaw_pose"])  # strength 0: raw, the one-frame snap kept
    assert np.array_equal(cleaned["eyelids"], params["eyelids"])
    cleaned, outliers = clean_params(params, valid, Smoothing(0.5), FPS)
    assert outliers[20] and np.abs(cleaned["jaw_pose"][20]).max() < 0.5
    assert np.std(np.diff(cleaned["expr"], axis=0)) < 0.3 * np.std(np.diff(params["expr"], axis=0))
    with pytest.raises(ValueError, match="unknown smoothing group"):
        Smoothing.parse(0.5, {"mouth": 1.0})


def test_identity_is_robust_to_bad_frames():
    truth = RNG.normal(0, 1, 300)
    shape = truth + RNG.normal(0, 0.05, (100, 300))
    shape[:15] += RNG.normal(0, 3, (15, 300))  # 15 wild frames
    valid = np.ones(100, dtype=bool)
    confidence = np.full(100, 0.9)
    head = np.zeros((100, 3))
    head[90:] = [0, 1.3, 0]  # profile views count less
    identity = aggregate_identity(shape, valid, confidence, head)
    assert rms(identity, truth) < 0.03
    plain_mean = shape.mean(axis=0)
    assert rms(identity, truth) < 0.2 * rms(plain_mean, truth)


def test_strength_zero_is_the_raw_prediction_everywhere():
    params = _params(50)
    params["eyelids"][10] = [1.5, 1.5]  # a real one-frame blink
    valid = np.ones(50, dtype=bool)
    cleaned, outliers = clean_params(params, valid, Smoothing(0.0), FPS)
    assert not outliers.any()
    for name, value in params.items():
        assert np.array_equal(cleaned[name], value), name


def test_nothing_is_smoothed_or_filled_across_a_segment_boundary():
    n = 40
    step = np.where(np.arange(n) < 20, 0.0, 1.0)[:, None]  # a cut at frame 20: every value jumps
    params = {name: np.repeat(step, width, axis=1).astype(np.float32) * 0.3 for name, width in PER_FRAME.items()
              if name != "crop_box"}
    valid = np.ones(n, dtype=bool)
    valid[16:20] = False  # the face lost just before the cut: held from its own segment, not interpolated
    segments = (np.arange(n) >= 20).astype(np.int32)
    cleaned, _ = clean_params(params, valid, Smoothing(1.0), FPS, segments)
    for name in params:
        assert np.allclose(cleaned[name][:20], 0.0, atol=1e-6), name
        assert np.allclose(cleaned[name][20:], params[name][20:], atol=1e-6), name
    merged, _ = clean_params(params, valid, Smoothing(1.0), FPS)  # one segment: the jump is smoothed
    assert not np.allclose(merged["expr"][19:21], cleaned["expr"][19:21], atol=1e-3)


def test_a_segment_without_a_face_takes_its_neighbours():
    values = np.arange(30, dtype=np.float32)[:, None].repeat(2, axis=1)
    valid = np.ones(30, dtype=bool)
    valid[10:20] = False
    segments = np.repeat([0, 1, 2], 10).astype(np.int32)
    filled = fill_segments(values, valid, segments)
    assert np.array_equal(filled[:10], values[:10]) and np.array_equal(filled[20:], values[20:])
    assert np.all((filled[10:20] >= 9) & (filled[10:20] <= 20))
