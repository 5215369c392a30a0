"""Talking to the backend (no bpy here): the warm backend process, and the jobs the extension sends it."""
