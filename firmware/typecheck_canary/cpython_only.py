"""Deliberately CPython-only code: the MicroPython stubs have no ``dataclasses`` or ``pathlib``, so the type check
MUST reject this file. scripts/firmware-test fails when mypy accepts it."""

import pathlib
from dataclasses import dataclass


@dataclass
class Tag:
    path: pathlib.Path
