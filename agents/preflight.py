"""Pre-flight check of a gateway configuration: do the files and devices it names exist?

A config can be valid YAML with every field in range and still name a model, a video or a CA file that is
not on this machine; the gateway would then start and crash-loop an agent over a typo. :func:`check_paths`
walks the validated :class:`GatewayConfig` and returns one :class:`PathProblem` per input that is missing:

* **errors**: files the gateway reads and cannot do without: TLS CA, client certificate and key, the broker
  password file, camera video files, detector models, the re-identification model, tag label templates. A
  path that exists but is a folder is an error too.
* **warnings**: devices that may appear later: a USB camera (``usb:N``, ``/dev/videoN``) or a serial tag
  bus port (``/dev/ttyUSB0``) that is not plugged in yet. The gateway retries those itself.

Network inputs (``rtsp://``, ``http(s)://`` cameras, pyserial URLs such as ``socket://``) and the files the
gateway creates (``state_dir``, the outbox and tag-store databases) are not checked here; ``storeedge
doctor`` probes the network. Relative paths are resolved against the working directory, as the gateway
does. Each problem names the dotted field (``cameras.0.detector.model``) and, when the YAML text is given,
the line it is on, the way :func:`agents.core.config.load_config` reports validation errors.

This module sits beside :mod:`agents.doctor`, above the feature packages, rather than in ``agents.core``:
it reads the camera and tag sections, and the core does not import features.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from agents.footfall.sources import source_kind
from agents.gateway.config import GatewayConfig
from agents.tags.config import SerialBusConfig

__all__ = ["PathProblem", "Severity", "check_paths"]

Severity = Literal["error", "warning"]
_Expect = Literal["file", "device"]
_Loc = tuple[str | int, ...]  # a field's path through the config, e.g. ("cameras", 0, "detector", "model")


@dataclass(frozen=True)
class _Input:
    """A local input named by the config: where, what the config says, and the path to look at."""

    loc: _Loc
    named: str
    expect: _Expect
    path: str | None = None  # when it differs from ``named`` (usb:0 is /dev/video0)


@dataclass(frozen=True)
class PathProblem:
    """One missing input: the config field that names it, the path, and whether it is fatal."""

    field: str
    path: str
    message: str
    severity: Severity
    line: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.field}{where}: {self.message}: {self.path}"


def check_paths(
    config: GatewayConfig, *, yaml_text: str | None = None, root: Path | None = None
) -> list[PathProblem]:
    """Every file or device named by ``config`` that is not there, errors first.

    ``yaml_text`` is the file ``config`` was loaded from; with it each problem carries its 1-based line.
    ``root`` checks absolute paths as seen from a staged tree (an image or a gateway provisioned into a
    folder, whose config names ``/etc/storeedge/...``).
    """
    document = _compose(yaml_text)
    problems = []
    for named in _named_inputs(config):
        path = named.path or named.named
        message = _missing(path, named.expect, root)
        if message is not None:
            severity: Severity = "error" if named.expect == "file" else "warning"
            field = ".".join(str(step) for step in named.loc)
            shown = named.named if named.path is None else f"{named.named} ({named.path})"
            problems.append(PathProblem(field, shown, message, severity, _line_of(document, named.loc)))
    return sorted(problems, key=lambda problem: not problem.is_error)


def _named_inputs(config: GatewayConfig) -> Iterator[_Input]:
    """Every local file or device the configuration names."""
    broker = config.broker
    if broker.password_file is not None:
        yield _Input(("broker", "password_file"), str(broker.password_file), "file")
    if broker.tls is not None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(broker.tls, name)
            if value is not None:
                yield _Input(("broker", "tls", name), str(value), "file")
    for index, camera in enumerate(config.cameras):
        url = camera.source.url
        kind = source_kind(url)
        if kind == "file":
            yield _Input(("cameras", index, "source", "url"), url, "device" if url.startswith("/dev/") else "file")
        elif kind == "usb" and sys.platform.startswith("linux"):
            # OpenCV's index N is /dev/videoN on Linux; elsewhere there is no path to look at.
            node = f"/dev/video{url.removeprefix('usb:')}"
            yield _Input(("cameras", index, "source", "url"), url, "device", node)
        # A detector without a model uses the one shipped in the package: nothing to look for then.
        model = getattr(camera.detector, "model", None)
        if model is not None:
            yield _Input(("cameras", index, "detector", "model"), str(model), "file")
    if config.footfall.identity is not None:
        yield _Input(("footfall", "identity", "model"), str(config.footfall.identity.model), "file")
    if config.tags is not None:
        for index, bus in enumerate(config.tags.buses):
            if isinstance(bus, SerialBusConfig) and "://" not in bus.port:
                yield _Input(("tags", "buses", index, "port"), bus.port, "device")
        for name, template in config.tags.templates.items():
            yield _Input(("tags", "templates", name), str(template), "file")


def _missing(path: str, expect: _Expect, root: Path | None = None) -> str | None:
    """Why ``path`` cannot serve as ``expect``, or None when it can."""
    target = Path(path).expanduser()
    if root is not None and target.is_absolute():
        target = root / target.relative_to(target.anchor)
    if expect == "device":
        return None if target.exists() else "device not present (fine if it is plugged in later)"
    if target.is_file():
        return None
    if target.exists():
        return "not a file"
    relative = "" if target.is_absolute() else f" (relative to {Path.cwd()})"
    return f"file not found{relative}"


def _compose(yaml_text: str | None) -> yaml.Node | None:
    if yaml_text is None:
        return None
    try:
        return yaml.compose(yaml_text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None  # the config was validated from this text, so this only happens when called with other text


def _line_of(root: yaml.Node | None, loc: _Loc) -> int | None:
    """The 1-based line of the value at ``loc``; None when the YAML does not spell it out (a default)."""
    node = root
    for step in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if getattr(key, "value", None) == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            node = None
        if node is None:
            return None
    return node.start_mark.line + 1 if node is not None else None
