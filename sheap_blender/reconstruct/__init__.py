"""Reconstruct Head: footage to the backend and back, and the import of its result (or a people file) as rigs."""
