"""Find People: who appears in the footage, choosing whom to follow, importing a people file."""
