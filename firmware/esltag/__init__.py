"""esltag: MicroPython firmware for the tag side of the storeedge serial ESL link (see firmware/README.md)."""

__version__ = "0.1.0"
