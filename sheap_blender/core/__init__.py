"""Pure data and math shared by the backend and the Blender extension.

Nothing here imports `bpy` or `torch`: NumPy and the standard library only. The backend
(its own Python with torch) and the extension (Blender's Python) both build on these modules.
"""
