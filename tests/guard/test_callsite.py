"""user_location: the innermost frame of the user's own code, whatever else the process ran."""

from __future__ import annotations

import os

import torch

from trainguard.runtime.callsite import Location, user_location

SOURCE = "def where():\n    return user_location()\n"


def _function_in(filename: str):  # type: ignore[no-untyped-def]
    namespace = {"user_location": user_location}
    exec(compile(SOURCE, filename, "exec"), namespace)
    return namespace["where"]


def test_the_same_function_in_a_library_file_and_a_user_file_is_told_apart(tmp_path) -> None:
    # The two code objects compare equal (same name, lines and bytecode; the file name is not
    # compared): a cache keyed by code object took the user's frame for the library's.
    in_library = _function_in(os.path.join(os.path.dirname(torch.__file__), "_trainguard_test_helper.py"))
    in_user_file = _function_in(str(tmp_path / "train.py"))
    assert in_library.__code__ == in_user_file.__code__
    in_library()  # a library frame: skipped, whatever it returns
    assert in_user_file() == Location(str(tmp_path / "train.py"), 2)
