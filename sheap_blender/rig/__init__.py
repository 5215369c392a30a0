"""The FLAME rig in a scene: building it, keying it, finding it again, its camera and timeline, all or nothing."""
