"""make-demo: every stand-in the project needs to run without licensed files, in one folder.

The stand-ins have the real formats, sizes and interfaces; they are never the real thing and say
so: the predictor carries `sheap_demo`, the FLAME pickle a `sheap_demo_standin` marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .model.flame_convert import convert_flame
from .standins.clip import write_demo_clip
from .standins.flame import write_demo_flame
from .standins.predictor import write_demo_predictor, write_full_size_predictor

DEMO_FLAME_CONVERTED = "flame.safetensors"


def make_demo(directory: Path, full_size: bool = False) -> Iterator[str]:
    """Write the stand-ins into `directory`, yielding a line per file for the user.

    `full_size` adds the release-sized predictor stand-in (ViT-B/16, ~87 M parameters, ~350 MB) for benchmarks.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pkl, eyelids = write_demo_flame(directory)
    yield f"demo FLAME stand-in (not FLAME): {pkl}"
    yield f"demo eyelid blendshapes: {eyelids}"
    converted = directory / DEMO_FLAME_CONVERTED
    convert_flame(pkl, eyelids, converted)
    yield f"demo FLAME, converted: {converted}"
    yield f"demo weights (stand-in predictor, not SHeaP): {write_demo_predictor(directory)}"
    if full_size:
        yield (f"demo weights, release-sized (ViT-B/16 stand-in with random weights, not SHeaP): "
               f"{write_full_size_predictor(directory)}")
    clip, motion = write_demo_clip(directory)
    yield f"astronaut clip: {clip} (known motion: {motion.name})"
