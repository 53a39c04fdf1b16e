"""Sans-IO codecs and wire schemas. Nothing in this package opens a socket, a port or a file."""
