"""Finding the face: footage frames in, the followed person's landmarks and 224x224 head crops out."""
