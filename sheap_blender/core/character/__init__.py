"""A take on a character's rig: which bones it turns, its head rotations, an animator's controls."""
