"""Backend throughput: frames/s end to end and for each stage alone, and peak memory vs clip length.

    .venv/bin/python benchmarks/backend_throughput.py [--frames 120] [--device cpu|cuda|both] [--quick]

The model is a ViT-B/16-sized stand-in (~86 M parameters, plain torch, random weights) with
SHeaP's input/output contract, so the figures are those of a network of SHeaP's size. Goal: end to
end >= 0.85 x the slowest stage alone. Peak memory (RSS of the real `reconstruct` command) for a
1-minute and a 5-minute 720p clip: goal, they differ by less than 10%.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.crop import box_from_landmarks, crop_image  # noqa: E402
from backend.demo_clip import write_demo_clip  # noqa: E402
from backend.demo_flame import write_demo_flame  # noqa: E402
from backend.demo_predictor import DemoSheap, write_demo_predictor  # noqa: E402
from backend.face_tracker import FaceTracker  # noqa: E402
from backend.flame import Flame  # noqa: E402
from backend.footage import open_footage  # noqa: E402
from backend.pipeline import ReconstructJob, reconstruct  # noqa: E402
from backend.predictor import Predictor  # noqa: E402
from sheap_blender.core.flame_model import load_flame  # noqa: E402


class ViTB16(nn.Module):
    """A ViT-B/16 image encoder (patch 16, width 768, depth 12, 12 heads): the size of SHeaP's backbone."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12):
        super().__init__()
        self.patches = nn.Conv2d(3, dim, 16, 16)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, 197, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.position
        return self.norm(self.encoder(tokens))[:, 0]


def write_vit_predictor(path: Path) -> Path:
    torch.manual_seed(0)
    model = DemoSheap(ViTB16(), 768).eval()
    print(f"ViT-B/16 stand-in: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
    torch.jit.save(torch.jit.script(model), str(path))
    return path


def rate(n: int, seconds: float) -> float:
    return n / max(seconds, 1e-9)


def measure_stages(clip: Path, flame_path: Path, weights: Path, device: torch.device, n_frames: int,
                   batch_size: int) -> dict[str, float]:
    footage = open_footage(clip)
    n_frames = min(n_frames, footage.frame_count)
    figures = {}

    start = time.perf_counter()
    frames = [rgb for _, rgb in footage.frames(0, n_frames)]
    figures["decode"] = rate(n_frames, time.perf_counter() - start)

    start = time.perf_counter()
    crops = []
    with FaceTracker() as tracker:
        results = [tracked for rgb in frames for tracked in tracker.track(rgb)] + tracker.flush()
        for rgb, tracked in zip(frames, results):
            detection = tracked.detection
            box = box_from_landmarks(detection.landmarks68) if detection else (0, 0, 224, 224)
            crops.append(crop_image(rgb, np.asarray(box, dtype=np.float64), 224))
    figures["detect+crop"] = rate(n_frames, time.perf_counter() - start)
    del frames

    predictor = Predictor(weights, device)
    batch = np.stack(crops[:batch_size])
    predictor.predict(batch)  # warm-up
    n_batches = max(1, n_frames // batch_size)
    start = time.perf_counter()
    for _ in range(n_batches):
        predictor.predict(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    figures["model"] = rate(n_batches * batch_size, time.perf_counter() - start)

    flame = Flame(load_flame(flame_path)).to(device)
    params = predictor.predict(batch)
    args = [torch.from_numpy(params[k]).to(device) for k in ("shape", "expr")]
    poses = torch.from_numpy(np.stack([params[k] for k in ("torso_pose", "neck_pose", "jaw_pose", "eye_l_pose",
                                                             "eye_r_pose")], axis=1)).to(device)
    eyelids, trans = (torch.from_numpy(params[k]).to(device) for k in ("eyelids", "cam_trans"))
    with torch.inference_mode():
        flame(*args, poses, eyelids, trans)
        start = time.perf_counter()
        for _ in range(n_batches):
            flame(*args, poses, eyelids, trans)
        if device.type == "cuda":
            torch.cuda.synchronize()
    figures["FLAME"] = rate(n_batches * batch_size, time.perf_counter() - start)

    job = ReconstructJob(footage, predictor, load_flame(flame_path), 0, n_frames, batch_size)
    start = time.perf_counter()
    reconstruct(job, stop=threading.Event())
    figures["end to end"] = rate(n_frames, time.perf_counter() - start)
    return figures


def peak_rss_mb(command: list[str]) -> float:
    """Run a command and return its peak resident memory in MB (os.wait4 gives that child's own)."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(command)}\n{process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def measure_memory(work: Path, flame_path: Path, weights: Path, seconds: tuple[int, int]) -> list[tuple[int, float]]:
    rows = []
    for duration in seconds:
        clip_dir = work / f"clip{duration}"
        clip_dir.mkdir()
        start = time.perf_counter()
        clip, _ = write_demo_clip(clip_dir, n_frames=duration * 30, fps=30, size=(1280, 720))
        print(f"  wrote a {duration} s 720p clip in {time.perf_counter() - start:.0f} s", flush=True)
        start = time.perf_counter()
        mb = peak_rss_mb([sys.executable, "-m", "backend", "reconstruct", str(clip), "-o", str(clip_dir / "r.st"),
                          "--flame", str(flame_path), "--weights", str(weights), "--device", "cpu",
                          "--progress", "none"])
        print(f"  {duration:4d} s clip ({duration * 30} frames): peak {mb:.0f} MB, "
              f"{duration * 30 / (time.perf_counter() - start):.1f} frames/s", flush=True)
        rows.append((duration, mb))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96, help="frames for the throughput figures")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="memory on 10 s and 50 s clips instead of 1 and 5 min")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    devices = [torch.device("cpu")] if args.device in ("cpu", "both") else []
    if args.device in ("cuda", "both"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        else:
            print("no CUDA device here: GPU figures skipped")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        flame_pkl, _ = write_demo_flame(work)
        clip, _ = write_demo_clip(work, n_frames=args.frames, fps=30, size=(1280, 720))
        vit = write_vit_predictor(work / "vit_b16_standin.pt")
        for device in devices:
            print(f"\n== throughput on {device.type}, {args.frames} frames of 720p, batch {args.batch_size}")
            figures = measure_stages(clip, flame_pkl, vit, device, args.frames, args.batch_size)
            for stage, fps in figures.items():
                print(f"  {stage:12s} {fps:8.1f} frames/s")
            slowest = min(v for k, v in figures.items() if k != "end to end")
            ratio = figures["end to end"] / slowest
            print(f"  end to end / slowest stage alone = {ratio:.2f} (goal >= 0.85)")
        if not args.skip_memory:
            seconds = (10, 50) if args.quick else (60, 300)
            print(f"\n== peak memory of `reconstruct` (small demo predictor), {seconds[0]} s and {seconds[1]} s clips")
            small = write_demo_predictor(work)
            (short, mb_short), (long, mb_long) = measure_memory(work, flame_pkl, small, seconds)
            print(f"  {long} s / {short} s peak memory = {mb_long / mb_short:.3f} (goal: within 10%)")


if __name__ == "__main__":
    main()
