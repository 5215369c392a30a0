"""Export Head: a rig or a driven character to glTF, FBX, Alembic or USD."""
