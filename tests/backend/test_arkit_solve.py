"""The FLAME -> ARKit-52 solve on the demo stand-in, built the way it is built from a user's FLAME file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sheap_blender.core.arkit import solve as arkit_solve
from sheap_blender.core.arkit.check import cross_source, round_trip
from sheap_blender.core.arkit.live_link_csv import read_live_link_csv
from sheap_blender.core.arkit.names import ARKIT_INDEX, ARKIT_NAMES
from sheap_blender.core.arkit.reference import load_reference, read_reference
from sheap_blender.core.arkit.solve import ArkitSolver, live_link_angles, lost_blinks, yaw_pitch_roll
from sheap_blender.core.flame.landmarks import DEMO_STANDIN, FLAME_2020, landmarks68
from sheap_blender.core.flame.params import FlameParams
from sheap_blender.core.result.rig_math import EYELID_RIGHT, eyelid_key_names
from sheap_blender.core.rotation import axis_angle_to_matrix

APPLE = Path(__file__).resolve().parents[1] / "data" / "apple_arkit_reference.safetensors"
REAL_TAKE = Path(__file__).resolve().parents[1] / "data" / "live_link_face_take_excerpt.csv"  # see its .txt


@pytest.fixture(scope="module")
def solver(demo_flame_model) -> ArkitSolver:
    return ArkitSolver.for_flame(demo_flame_model)


def frames(n: int = 1, **fields: list) -> FlameParams:
    """`n` neutral frames with some fields set (each a list of rows, or one row for every frame)."""
    values = FlameParams.zeros(n).as_dict()
    for name, rows in fields.items():
        values[name] = np.broadcast_to(np.asarray(rows, np.float32), values[name].shape).copy()
    return FlameParams(**values)


def others(weights: np.ndarray, *names: str) -> float:
    """The largest coefficient of the channels not named."""
    mask = np.ones(len(ARKIT_NAMES), bool)
    mask[[ARKIT_INDEX[n] for n in names]] = False
    return float(weights[..., mask].max())


def test_stand_in_has_its_own_landmarks(demo_flame_model):
    from backend.standins.flame import demo_landmarks68

    assert demo_landmarks68(demo_flame_model.v_template).tolist() == list(DEMO_STANDIN)
    assert landmarks68(demo_flame_model).tolist() == list(DEMO_STANDIN)
    real = type(demo_flame_model)(**{**demo_flame_model.__dict__, "is_demo": False})
    assert landmarks68(real).tolist() == list(FLAME_2020)


def test_reference_is_ict_facekit_with_left_on_plus_x():
    reference = load_reference()
    assert len(reference.shape_names) == 53 and "tongueOut" not in reference.channels
    for name in ("eyeBlink", "mouthSmile", "browDown"):
        left = reference.offsets[reference.shape_names.index(f"{name}_L")]
        moved = np.linalg.norm(left, axis=1)
        centre = (reference.neutral * moved[:, None]).sum(0) / moved.sum()
        assert centre[0] > 0.01, name  # the face's own left is +X, as in FLAME and ARKit
    assert reference.neutral[reference.landmarks68[36], 0] < 0 < reference.neutral[reference.landmarks68[45], 0]


def test_neutral_face_is_all_zero(solver):
    result = solver.solve(frames(3))
    assert result.weights.shape == (3, 52) and result.weights.max() <= 0.1
    assert np.allclose(result.head, 0) and np.allclose(result.left_eye, 0)


@pytest.mark.parametrize("angle", [0.05, 0.15, 0.3])
def test_jaw_rotation_alone_is_jaw_open(solver, angle):
    weights = solver.solve(frames(jaw_pose=[angle, 0, 0])).weights[0]
    scale = solver.calibration.jaw_full_scale[0]
    assert 0.15 < scale < 0.6  # radians: the reference's jawOpen is a real mouth opening
    assert weights[ARKIT_INDEX["jawOpen"]] == pytest.approx(min(1.0, angle / scale), abs=1e-6)
    assert others(weights, "jawOpen") <= 0.1


def test_jaw_closing_past_rest_opens_nothing(solver):
    assert solver.solve(frames(jaw_pose=[-0.1, 0, 0])).weights.max() <= 0.1


def test_jaw_sideways_by_side(solver):
    left = solver.solve(frames(jaw_pose=[0, 0.05, 0])).weights[0]  # the chin toward the face's left (+X)
    right = solver.solve(frames(jaw_pose=[0, -0.05, 0])).weights[0]
    assert left[ARKIT_INDEX["jawLeft"]] > 0.5 and others(left, "jawLeft") <= 0.1
    assert right[ARKIT_INDEX["jawRight"]] > 0.5 and others(right, "jawRight") <= 0.1


def test_one_eyelid_closed_is_that_sides_blink(solver, demo_flame_model):
    names = eyelid_key_names(demo_flame_model)  # the stand-in's channel 0 is the face's right lid
    for channel, name in enumerate(names):
        side = "Right" if name == EYELID_RIGHT else "Left"
        lids = np.zeros(2, np.float32)
        lids[channel] = 1.0
        weights = solver.solve(frames(eyelids=lids)).weights[0]
        other = "Left" if side == "Right" else "Right"
        assert weights[ARKIT_INDEX[f"eyeBlink{side}"]] > 0.6, name
        assert weights[ARKIT_INDEX[f"eyeBlink{other}"]] <= 0.1, name
        assert others(weights, f"eyeBlink{side}") <= 0.15, name


def test_eyes_turned_give_each_eyes_look_channels(solver):
    scale = solver.calibration.gaze_full_scale
    assert np.radians(15) < scale < np.radians(45)  # the reference's lid follows the eye down that far
    toward_left = frames(eye_l_pose=[0, scale, 0], eye_r_pose=[0, scale, 0]).as_dict()
    weights = solver.solve(FlameParams(**toward_left)).weights[0]
    # gaze toward the face's left: the left eye looks out, the right eye looks in (toward the nose)
    assert weights[ARKIT_INDEX["eyeLookOutLeft"]] == pytest.approx(1.0, abs=1e-4)
    assert weights[ARKIT_INDEX["eyeLookInRight"]] == pytest.approx(1.0, abs=1e-4)
    assert others(weights, "eyeLookOutLeft", "eyeLookInRight") <= 0.1
    down = solver.solve(frames(eye_l_pose=[scale / 2, 0, 0], eye_r_pose=[scale / 2, 0, 0])).weights[0]
    assert down[ARKIT_INDEX["eyeLookDownLeft"]] == pytest.approx(0.5, abs=1e-3)
    assert down[ARKIT_INDEX["eyeLookDownRight"]] == pytest.approx(0.5, abs=1e-3)
    up = solver.solve(frames(eye_l_pose=[-scale, 0, 0])).weights[0]
    assert up[ARKIT_INDEX["eyeLookUpLeft"]] == pytest.approx(1.0, abs=1e-4) and others(up, "eyeLookUpLeft") <= 0.1


def test_our_eye_signs_are_the_apps(solver):
    """A gaze to the performer's left: both eyes' yaw negative, as in takes the app records; down: pitch positive."""
    turn = 0.3
    left = solver.solve(frames(eye_l_pose=[0, turn, 0], eye_r_pose=[0, turn, 0]))  # FLAME: +Y turn = the face's left
    assert left.weights[0, ARKIT_INDEX["eyeLookOutLeft"]] > 0.5 and left.weights[0, ARKIT_INDEX["eyeLookInRight"]] > 0.5
    assert left.left_eye[0, 0] == pytest.approx(-turn) and left.right_eye[0, 0] == pytest.approx(-turn)
    down = solver.solve(frames(eye_l_pose=[turn, 0, 0], eye_r_pose=[turn, 0, 0]))
    assert down.left_eye[0, 1] == pytest.approx(turn) and down.right_eye[0, 1] == pytest.approx(turn)
    # the app's rows: its eye angles read through our solve give back its own eyeLook channels
    take = read_live_link_csv(REAL_TAKE)
    ours = solver.gaze_weights(take.left_eye, take.right_eye)
    for side in ("Left", "Right"):
        for direction in ("In", "Out", "Down", "Up"):
            channel = ARKIT_INDEX[f"eyeLook{direction}{side}"]
            agreement = np.corrcoef(ours[:, channel], take.weights[:, channel])[0, 1]
            assert agreement > 0.8, (direction, side, agreement)


def test_our_take_correlates_as_the_apps_takes_do(solver, tmp_path):
    """The app's takes: LeftEyeYaw against EyeLookOutLeft negative, against EyeLookInLeft positive, RightEyeYaw the
    other way round, pitch with EyeLookDown positive. Ours, written as a CSV and read back by column name, alike."""
    import csv

    from sheap_blender.core.arkit.live_link_csv import LiveLinkTake, write_live_link_csv

    rng = np.random.default_rng(11)
    n = 300
    gaze = rng.normal(0, 0.2, (n, 3)) * [1, 1, 0]  # both eyes turned together, as eyes are
    solved = solver.solve(frames(n, eye_l_pose=gaze, eye_r_pose=gaze + rng.normal(0, 0.02, (n, 3)) * [1, 1, 0]))
    path = tmp_path / "ours.csv"
    write_live_link_csv(path, LiveLinkTake(frames=np.arange(n, dtype=np.float64), weights=solved.weights,
                                           head=solved.head, left_eye=solved.left_eye, right_eye=solved.right_eye), 30)
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))

    def correlation(a: str, b: str) -> float:
        return float(np.corrcoef([float(r[a]) for r in rows], [float(r[b]) for r in rows])[0, 1])

    for take in ("ours", "the app's"):
        if take == "the app's":
            with open(REAL_TAKE, newline="") as stream:
                rows = list(csv.DictReader(stream))
        assert correlation("LeftEyeYaw", "EyeLookOutLeft") < -0.5, take
        assert correlation("LeftEyeYaw", "EyeLookInLeft") > 0.5, take
        assert correlation("RightEyeYaw", "EyeLookOutRight") > 0.5, take
        assert correlation("RightEyeYaw", "EyeLookInRight") < -0.5, take
        assert correlation("LeftEyePitch", "EyeLookDownLeft") > 0.5, take
        assert correlation("RightEyePitch", "EyeLookDownRight") > 0.5, take


def test_head_rotation_is_root_and_neck_together_in_radians(solver):
    rng = np.random.default_rng(3)
    torso, neck = rng.normal(0, 0.2, (2, 50, 3)).astype(np.float32)
    result = solver.solve(frames(50, torso_pose=torso, neck_pose=neck))
    expected = axis_angle_to_matrix(torso.astype(np.float64)) @ axis_angle_to_matrix(neck.astype(np.float64))
    yaw, pitch, roll = result.head.T * [[-1], [1], [-1]]  # the app's yaw and roll: against the right-hand rule

    def about(axis: int, angle: np.ndarray) -> np.ndarray:
        vector = np.zeros((len(angle), 3))
        vector[:, axis] = angle
        return axis_angle_to_matrix(vector)

    rebuilt = about(1, yaw) @ about(0, pitch) @ about(2, roll)  # R = Ry(yaw) Rx(pitch) Rz(roll)
    assert np.allclose(rebuilt, expected, atol=1e-5)
    assert np.allclose(yaw_pitch_roll(about(1, np.array([0.3])))[0], [0.3, 0, 0])
    assert np.allclose(live_link_angles(about(1, np.array([0.3])))[0], [-0.3, 0, 0])  # toward the face's left


def test_lost_blinks_are_said(solver, demo_flame_model):
    from sheap_blender.core.result.result_format import Result

    params = frames(3, eyelids=[[0.0, 0.0], [0.8, 0.7], [0.0, 0.1]])

    def lids(p: FlameParams) -> Result:  # a result with these parameters
        return Result(frame_index=np.arange(p.n_frames), valid=np.ones(p.n_frames, bool), params=p.as_dict())

    without = type(demo_flame_model)(**{**demo_flame_model.__dict__, "eyelid_dirs": None})
    assert "blinks cannot be carried" in lost_blinks(lids(params), without) and "--eyelids" in lost_blinks(
        lids(params), without)
    assert lost_blinks(lids(params), demo_flame_model) == ""  # the FLAME file carries them
    assert lost_blinks(lids(frames(3)), without) == ""  # nothing to lose
    # what is lost: without eyelid shapes the closed lids read as no blink
    assert solver.solve(params).weights[1, ARKIT_INDEX["eyeBlinkLeft"]] > 0.3
    assert ArkitSolver.for_flame(without).solve(params).weights[1, ARKIT_INDEX["eyeBlinkLeft"]] < 0.05


def test_solve_equals_fit_of_the_face_offsets(solver):
    """The fast path (offsets linear in the parameters) equals fitting the explicit vertex offsets."""
    rng = np.random.default_rng(4)
    params = frames(20, expr=rng.normal(0, 1, (20, 100)), eyelids=rng.uniform(0, 1, (20, 2)))
    fast = solver.solve(params).weights
    explicit = solver.channel_weights(solver.shape_weights(solver.face_offsets(params)))
    assert np.allclose(fast, explicit, atol=1e-6)


def test_round_trip_of_the_references_own_shapes(solver):
    check = round_trip(solver)
    assert check.single_error.max() <= 0.05, dict(zip(solver.calibration.shape_channels, check.single_error))
    assert check.mixed_error <= 0.05


def test_coordinate_descent_has_converged(solver, monkeypatch):
    rng = np.random.default_rng(5)
    offsets = np.einsum("fs,src->frc", rng.uniform(0, 1, (30, len(solver.calibration.basis))),
                        solver.calibration.basis) + rng.normal(0, 2e-4, (30, len(solver.calibration.region), 3))
    quick = solver.shape_weights(offsets)
    monkeypatch.setattr(arkit_solve, "SWEEPS", 2000)
    assert np.abs(solver.shape_weights(offsets) - quick).max() < 5e-3  # invisible on a character


def test_cross_source_apple_arkit_shapes(solver, demo_flame_model):
    """Apple's ARKit shapes brought onto the stand-in: the same-named channel wins for most (docs/arkit.md)."""
    check = cross_source(solver, demo_flame_model, read_reference(APPLE))
    assert len(check.names) == 51
    assert check.hits.sum() >= 33  # measured 33 of 51 on the stand-in, whose mouth has no lips (docs/arkit.md)
    for name in ("eyeLookDownLeft", "eyeLookDownRight"):
        assert check.hits[check.names.index(name)], name  # gaze through the lids that follow the eye
    # sides never swap: a sided shape's own channel outweighs its mirror's
    for name, row in zip(check.names, check.weights):
        for side, mirror in (("Left", "Right"), ("Right", "Left")):
            if name.endswith(side) and row[ARKIT_INDEX[name]] > 0:
                assert row[ARKIT_INDEX[name]] > row[ARKIT_INDEX[name[: -len(side)] + mirror]], name
    assert check.weights[check.names.index("jawOpen"), ARKIT_INDEX["jawOpen"]] > 0.5


def test_cache_is_written_and_read_back(demo_flame_model, tmp_path, solver):
    built = ArkitSolver.for_flame(demo_flame_model, tmp_path)
    cached = list(tmp_path.glob("arkit-solve-*.safetensors"))
    assert len(cached) == 1
    loaded = ArkitSolver.for_flame(demo_flame_model, tmp_path)
    params = frames(5, expr=np.random.default_rng(6).normal(0, 1, (5, 100)), jaw_pose=[0.1, 0, 0])
    assert np.allclose(loaded.solve(params).weights, built.solve(params).weights, atol=1e-5)
    cached[0].write_bytes(b"broken")  # a damaged cache is rebuilt, never an error
    assert np.allclose(ArkitSolver.for_flame(demo_flame_model, tmp_path).solve(params).weights,
                       built.solve(params).weights, atol=1e-5)
