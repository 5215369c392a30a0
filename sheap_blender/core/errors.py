"""The one error type users see: a bad input file, named, with what is wrong with it."""

from __future__ import annotations

import os


class InputError(Exception):
    """A file the user gave cannot be used. `str()` is one line: the file, then the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
