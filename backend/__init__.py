"""SHeaP backend: footage in, per-frame FLAME parameters out. Runs in its own Python environment."""

__version__ = "0.1.0"
