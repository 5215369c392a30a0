"""Drive the user's character with a result or a Live Link Face take: mapping, bones, camera, ARKit keys."""
