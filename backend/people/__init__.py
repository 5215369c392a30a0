"""People through a clip: following one person's face, finding everyone, one face to one person."""
