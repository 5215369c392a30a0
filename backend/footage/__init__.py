"""Footage in: frames from a video, a folder of images, a pattern or one image; and the hard cuts between shots."""
