"""Export formats: what each carries, and shape-key weights remapped into [0, 1] for the formats that clamp them."""
