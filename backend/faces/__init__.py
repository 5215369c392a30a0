"""Finding faces in a frame: the full-frame search, MediaPipe landmarks, and the 224x224 head crop SHeaP reads."""
