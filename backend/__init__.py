"""SHeaP backend: footage in, per-frame FLAME parameters out. Runs in its own Python environment."""

import os

# Before torch loads its OpenMP runtime: the network's threads sleep between operations instead of spinning,
# so the decoder and face-tracking threads running beside it get the cores (docs/performance.md#threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenCV reads OpenEXR only when this is set before it loads: film plates come as EXR sequences.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

__version__ = "0.1.0"
