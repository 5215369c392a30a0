"""FLAME (Li et al. 2017) as plain arrays: the model, its per-frame parameters, landmarks, and the rig's math."""
