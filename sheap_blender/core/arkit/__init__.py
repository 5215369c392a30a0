"""ARKit's 52 face blendshapes: names, the reference head, the FLAME -> ARKit solve, keys made for a mesh."""
