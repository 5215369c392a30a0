"""2D Gaussians on the head: views over the clip, colours, CUDA refinement, splatting, PLY export."""
