"""How the head is seen: the Gaussian point-cloud preview on the rig, and rendering it over the footage."""
