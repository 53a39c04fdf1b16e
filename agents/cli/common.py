"""What every ``storeedge`` command shares: exit codes, the one-line failure report, logging set-up, argument
types and progress lines.

Only the standard library is imported at module level (here and in every ``agents.cli`` module): ``storeedge
--version`` and ``--help`` must answer at once on a Pi, so pydantic, rich, numpy, OpenCV and onnxruntime are
imported by the command that needs them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.core.config import BrokerUrl, TlsConfig

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
MQTT_PROTOCOLS = ("3.1.1", "5")
"""The values of :class:`agents.core.config.MqttProtocol`, spelled here so the parser needs no pydantic."""

log = logging.getLogger("storeedge")


class CliError(Exception):
    """A command cannot go on: ``str(err)`` says what to fix; ``exit_code`` is the process's exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def setup_logging(verbosity: int, default: int = logging.INFO) -> None:
    """Rich, coloured log lines on a terminal; plain, unwrapped lines otherwise (journald, pipes, files)."""
    level = logging.DEBUG if verbosity > 0 else default
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        # journald stamps each line itself; one record stays one line however long it is.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def progress_printer(enabled: bool = True) -> Any:
    """A ``progress(message)`` callback for long benchmarks: one line on stderr each (stdout keeps the JSON)."""

    def progress(message: str) -> None:
        if enabled:
            print(f"... {message}", file=sys.stderr, flush=True)

    return progress


def report_failure(args: argparse.Namespace, exc: BaseException) -> int:
    """End a failed command with one line that names what to fix, and its exit code; never a traceback."""
    from agents.core.errors import ConfigError, StoreedgeError

    command = " ".join(
        part for part in (args.command, *(getattr(args, f"{args.command}_command", None) or "",)) if part
    )
    cause = first_leaf(exc)
    if isinstance(cause, CliError):
        message, code = str(cause), cause.exit_code
    elif isinstance(cause, ConfigError):
        message, code = str(cause), EXIT_USAGE
    elif isinstance(cause, StoreedgeError):
        message, code = str(cause), EXIT_FAIL
    elif isinstance(cause, OSError) and cause.filename is not None:
        message, code = f"{cause.strerror or cause}: {cause.filename}", EXIT_FAIL
    else:
        # not an error we raise on purpose: say what it was, and how to see where it came from
        text = str(cause) or "no message"
        message, code = f"unexpected {type(cause).__name__}: {text} (run with --debug for the traceback)", EXIT_FAIL
    print(f"storeedge {command}: {message}", file=sys.stderr)
    log.debug("failure", exc_info=exc)
    return code


def first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups; task groups wrap what their tasks raised."""
    while isinstance(exc, BaseExceptionGroup):
        import asyncio

        leaves = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (leaves or list(exc.exceptions))[0]
    return exc


def broker_url_arg(text: str) -> BrokerUrl:
    from agents.core.config import BrokerUrl

    try:
        return BrokerUrl.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def line_arg(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected X1,Y1,X2,Y2, got {text!r}") from exc
    if (x1, y1) == (x2, y2):
        raise argparse.ArgumentTypeError("the line's two points must differ")
    return x1, y1, x2, y2


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    from agents.core.config import TlsConfig

    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    for flag, path in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            raise CliError(f"{flag}: no such file: {path}", EXIT_USAGE)
    return TlsConfig(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-ca", type=Path, help="CA file to verify the broker")
    parser.add_argument("--tls-cert", type=Path, help="client certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="client private key (PEM)")
    parser.add_argument("--protocol", choices=MQTT_PROTOCOLS, default=MQTT_PROTOCOLS[0])
