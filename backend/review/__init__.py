"""The review video: the posed head drawn over the footage, and the NumPy mesh z-buffer."""
