"""Stand-ins made on the spot (FLAME, predictor, clips), marked as "demo weights"; never the real files."""
