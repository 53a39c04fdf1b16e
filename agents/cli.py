"""The ``storeedge`` command line: a thin shell over library functions.

storeedge --version
storeedge run --config FILE                 run the gateway agents until SIGTERM/SIGINT
storeedge config check FILE                 validate a gateway config (exit 0 valid, 2 invalid)
storeedge cloud --broker URL --db FILE      run the reference cloud sink
storeedge sim run [--scenario NAME|FILE] [--duration S] [--broker URL] [--report FILE]
storeedge sim board --link PATH [--state-dir DIR]
storeedge bench uplink --broker URL --messages N [--json]
storeedge doctor [--config FILE] [--json] [--bundle FILE.tar.gz]
storeedge tags list|show|ping|led [--config FILE] ...
storeedge counts --live [--config FILE]
storeedge flash gateway|device|esp32-base ...   the installer tool (same as tools/flash.py)
"""

from __future__ import annotations

# Only the standard library at module level: `storeedge --version` and `--help` must answer at once on a Pi,
# so pydantic, rich, numpy, OpenCV and onnxruntime are imported by the command that needs them.
import argparse
import json
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


def _setup_logging(verbosity: int, default: int = logging.INFO) -> None:
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


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _broker_url(text: str) -> BrokerUrl:
    from agents.core.config import BrokerUrl

    try:
        return BrokerUrl.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    from agents.core.config import TlsConfig

    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    for flag, path in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            raise CliError(f"{flag}: no such file: {path}", EXIT_USAGE)
    return TlsConfig(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)


def _add_tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-ca", type=Path, help="CA file to verify the broker")
    parser.add_argument("--tls-cert", type=Path, help="client certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="client private key (PEM)")
    parser.add_argument("--protocol", choices=MQTT_PROTOCOLS, default=MQTT_PROTOCOLS[0])


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (see :mod:`agents`)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from agents import __version__

        print(f"storeedge {__version__}")
        parser.exit()


class CliError(Exception):
    """A command cannot go on: ``str(err)`` says what to fix; ``exit_code`` is the process's exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storeedge", description="storeedge in-store edge agents")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    parser.add_argument("--debug", action="store_true", help="debug logging, and a traceback when a command fails")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the gateway agents")
    run.add_argument("--config", "-c", type=Path, required=True, help="gateway YAML file")

    config = commands.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = config_sub.add_parser("check", help="validate a gateway config file")
    check.add_argument("file", type=Path)
    check.add_argument(
        "--root", type=Path, help="check the files the config names under this folder (a staged image or tree)"
    )

    commands.add_parser("flash", help="installer tool: provision gateways, flash tag boards (see flash --help)")
    doctor = commands.add_parser("doctor", help="check this gateway and say how to fix what is wrong")
    doctor.add_argument("--config", "-c", type=Path, default=Path("/etc/storeedge/gateway.yaml"))
    doctor.add_argument("--json", action="store_true", help="print one JSON object (checks, worst)")
    doctor.add_argument("--bundle", type=Path, help="also write a redacted support bundle (.tar.gz)")
    doctor.add_argument("--timeout", type=_positive_float, default=5.0, help="seconds per network probe")

    tags = commands.add_parser("tags", help="field commands for e-ink tags")
    tags_sub = tags.add_subparsers(dest="tags_command", required=True, metavar="SUBCOMMAND")
    tags_list = tags_sub.add_parser("list", help="every tag's state from the tag store")
    tags_list.add_argument("--problems", action="store_true", help="only failed, low-battery or unseen tags")
    tags_show = tags_sub.add_parser("show", help="one tag's stored state")
    tags_show.add_argument("tag", help="ESL address, e.g. 1/5")
    tags_ping = tags_sub.add_parser("ping", help="ping tags through the running gateway")
    tags_ping.add_argument("tag", nargs="+")
    tags_led = tags_sub.add_parser("led", help="flash (find-my-tag), light or switch off tag LEDs")
    tags_led.add_argument("tag", nargs="+")
    tags_led.add_argument("--action", choices=["flash", "on", "off"], default="flash")
    tags_led.add_argument("--color", choices=["red", "green", "blue", "white", "yellow"], default="green")
    tags_led.add_argument("--duration", type=int, default=10, help="seconds")
    for sub in (tags_list, tags_show, tags_ping, tags_led):
        sub.add_argument("--config", "-c", type=Path, default=Path("/etc/storeedge/gateway.yaml"))
        sub.add_argument("--json", action="store_true")
    for sub in (tags_ping, tags_led):
        sub.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds to wait for the answer")
    counts = commands.add_parser("counts", help="follow the footfall counts the running gateway sends")
    counts.add_argument("--live", action="store_true", help="follow the counts as they arrive (the default)")
    counts.add_argument("--config", "-c", type=Path, default=Path("/etc/storeedge/gateway.yaml"))

    cloud = commands.add_parser("cloud", help="run the reference cloud sink (stores uplink traffic in SQLite)")
    cloud.add_argument("--broker", type=_broker_url, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    cloud.add_argument("--db", type=Path, required=True, help="SQLite file to store messages in")
    cloud.add_argument("--client-id", default="storeedge-cloud-sink")
    cloud.add_argument("--interval", type=_positive_float, default=10.0, help="seconds between status lines")
    cloud.add_argument("--report-only", action="store_true", help="print the report of --db and exit")
    _add_tls_flags(cloud)

    label = commands.add_parser("label", help="e-ink price labels")
    label_sub = label.add_subparsers(dest="label_command", required=True, metavar="SUBCOMMAND")
    render = label_sub.add_parser("render", help="render a label to a PNG preview")
    render.add_argument("--template", type=Path, help="template YAML (default: the built-in price label)")
    render.add_argument("--fields", required=True, help='JSON object, e.g. \'{"name": "Tea", "price": 2.49}\'')
    render.add_argument("--panel", required=True, help="panel name, e.g. 296x128-bwr or 400x300-bw")
    render.add_argument("--out", type=Path, required=True, help="PNG file to write")
    render.add_argument("--scale", type=_positive_int, default=1, help="integer zoom of the preview")

    sim = commands.add_parser("sim", help="the simulator")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")
    sim_run = sim_sub.add_parser("run", help="run a simulator scenario")
    sim_run.add_argument("--scenario", help="built-in scenario name or scenario YAML file (default: default)")
    sim_run.add_argument("--duration", type=_positive_float, help="seconds (overrides the scenario)")
    sim_run.add_argument("--broker", type=_broker_url, help="use this broker instead of the embedded one")
    sim_run.add_argument("--report", type=Path, help="write the JSON report here")
    sim_sub.add_parser("list", help="list built-in scenarios")
    sim_board = sim_sub.add_parser("board", help="serve a virtual MicroPython board on a pty until stopped")
    sim_board.add_argument("--link", required=True, help="symlink to create for the board's serial port")
    sim_board.add_argument("--state-dir", help="keep the board's filesystem here (default: a temporary folder)")
    sim_gateway = sim_sub.add_parser(
        "gateway", help="run a real gateway from its config, with synthetic load from the simulator (soak tests)"
    )
    sim_gateway.add_argument("--config", "-c", type=Path, required=True, help="gateway YAML file")
    sim_gateway.add_argument(
        "--load", help="synthetic uplink load: streams=N,rate_per_s=R[,messages=M][,payload_bytes=B]"
    )

    bench = commands.add_parser("bench", help="benchmarks (print JSON)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="SUBCOMMAND")
    bench_uplink = bench_sub.add_parser("uplink", help="durable outbox vs bare paho QoS 1 throughput")
    bench_uplink.add_argument("--broker", type=_broker_url, required=True)
    bench_uplink.add_argument("--messages", type=_positive_int, default=10000)
    bench_uplink.add_argument("--inflight", type=_positive_int, default=100)
    bench_uplink.add_argument("--payload-bytes", type=int, default=128)
    bench_uplink.add_argument("--protocol", choices=MQTT_PROTOCOLS, default=MQTT_PROTOCOLS[0])
    bench_uplink.add_argument("--rounds", type=_positive_int, default=3, help="baseline/durable pairs (medians)")
    bench_uplink.add_argument("--json", action="store_true", help="print only the JSON object")
    bench_ble = bench_sub.add_parser("tags-ble", help="modelled fleet time of a BLE price change vs a naive baseline")
    bench_ble.add_argument("--tags", type=_positive_int, default=1000)
    bench_ble.add_argument("--parallel", default="1,2,4,8", help="comma-separated connection counts")
    bench_ble.add_argument("--panel", default="296x128-bwr")
    bench_ble.add_argument("--json", action="store_true", help="print only the JSON object")
    bench_footfall = bench_sub.add_parser(
        "footfall", help="detect, track and count one video against the supervision baseline"
    )
    bench_footfall.add_argument("--video", type=Path, help="video file (.avi, .mp4, .mpg)")
    bench_footfall.add_argument("--model", type=Path, help="ONNX person detector (default: the shipped YOLOX-Nano)")
    bench_footfall.add_argument("--detector", choices=["auto", "yolox", "ssd", "yolov8"], default="auto")
    bench_footfall.add_argument("--line", type=_line, required=True, help="X1,Y1,X2,Y2 in pixels")
    bench_footfall.add_argument("--gt", type=Path, help="MOT ground truth (gt.txt) for MOTA/IDF1")
    bench_footfall.add_argument("--dets", type=Path, help="MOT detections instead of running the detector")
    bench_footfall.add_argument("--fps", type=_positive_float, help="frame rate when the video does not say")
    bench_footfall.add_argument("--score-threshold", type=float, help="detector or --dets score cut")
    bench_footfall.add_argument("--threads", type=_positive_int, default=2, help="detector threads")
    bench_footfall.add_argument("--hysteresis", type=float, default=8.0, help="line hysteresis band, pixels")
    bench_footfall.add_argument("--visit-window", type=_positive_float, default=600.0, help="seconds")
    bench_footfall.add_argument("--json", action="store_true", help="print only the JSON object")
    return parser


def _line(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected X1,Y1,X2,Y2, got {text!r}") from exc
    if (x1, y1) == (x2, y2):
        raise argparse.ArgumentTypeError("the line's two points must differ")
    return x1, y1, x2, y2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["flash"]:
        # the installer tool has its own parser (also run as tools/flash.py from a checkout)
        from agents.provision.cli import main as flash_main

        return flash_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.debug:
        args.verbose = max(args.verbose, 1)
    handler = {
        "run": _cmd_run,
        "config": _cmd_config,
        "cloud": _cmd_cloud,
        "sim": _cmd_sim,
        "label": _cmd_label,
        "bench": _cmd_bench,
        "doctor": _cmd_doctor,
        "tags": _cmd_tags,
        "counts": _cmd_counts,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        return _report_failure(args, exc)


def _report_failure(args: argparse.Namespace, exc: BaseException) -> int:
    """End a failed command with one line that names what to fix, and its exit code; never a traceback."""
    from agents.core.errors import ConfigError, StoreedgeError

    command = " ".join(
        part for part in (args.command, *(getattr(args, f"{args.command}_command", None) or "",)) if part
    )
    cause = _first_leaf(exc)
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


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups; task groups wrap what their tasks raised."""
    while isinstance(exc, BaseExceptionGroup):
        import asyncio

        leaves = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (leaves or list(exc.exceptions))[0]
    return exc


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from agents.core.urls import redact_url
    from agents.gateway.config import load_config
    from agents.gateway.runtime import Gateway, run_until_signalled
    from agents.preflight import check_paths

    _setup_logging(args.verbose)
    config = load_config(args.config)
    # A missing model or video stops one camera, not the gateway: say so once, up front, and run the rest.
    for problem in check_paths(config, yaml_text=args.config.read_text(encoding="utf-8")):
        (log.error if problem.is_error else log.warning)("%s: %s", args.config, problem)
    log.info("starting gateway %s/%s, broker %s", config.store_id, config.gateway_id, redact_url(config.broker.url))
    asyncio.run(run_until_signalled(Gateway(config)))
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 1 with warnings, 2 with failures."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from agents.doctor import Doctor, exit_code, report, write_bundle

    _setup_logging(args.verbose, default=logging.ERROR)
    doctor = Doctor(args.config, timeout_s=args.timeout)
    with _stderr_console().status("running checks", spinner="dots"):
        results = asyncio.run(doctor.run())
    if args.json:
        print(json.dumps(report(results), default=str))
    else:
        table = Table(title=f"storeedge doctor: {args.config}")
        for column in ("check", "status", "summary", "fix"):
            table.add_column(column)
        colours = {"pass": "green", "warn": "yellow", "fail": "red"}
        for result in results:
            status = f"[{colours[result.status]}]{result.status}[/]"
            table.add_row(result.name, status, result.summary, result.hint)
        Console().print(table)
    if args.bundle:
        write_bundle(args.bundle, doctor, results)
        print(f"support bundle written to {args.bundle} (secrets redacted)", file=sys.stderr)
    return exit_code(results)


def _cmd_tags(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from rich.console import Console
    from rich.table import Table

    from agents.field import call_gateway, tag_rows
    from agents.gateway.config import load_config

    _setup_logging(args.verbose, default=logging.ERROR)
    config = load_config(args.config)
    if args.tags_command in ("list", "show"):
        rows = tag_rows(
            config,
            problems_only=getattr(args, "problems", False),
            address=args.tag if args.tags_command == "show" else None,
        )
        if args.tags_command == "show" and not rows:
            raise CliError(f"unknown tag {args.tag} (`storeedge tags list` shows the tags this gateway knows)")
        if args.json:
            print(json.dumps(rows if args.tags_command == "list" else rows[0], default=str))
            return EXIT_OK
        table = Table(title=f"tags of {config.gateway_id}")
        columns = ("address", "bus", "panel", "state", "battery_mv", "last_seen", "last_error")
        for column in columns:
            table.add_column(column)
        for row in rows:
            seen = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["last_seen"])) if row["last_seen"] else "-"
            table.add_row(*(seen if c == "last_seen" else str(row[c] if row[c] is not None else "-") for c in columns))
        Console().print(table)
        return EXIT_OK
    if args.tags_command == "ping":
        ctype, cargs = "tags.ping", {"tags": args.tag}
    else:
        ctype = "tags.led"
        cargs = {"tags": args.tag, "action": args.action, "color": args.color, "duration_s": args.duration}
    with _stderr_console().status(f"asking gateway {config.gateway_id} ({ctype})", spinner="dots"):
        result = asyncio.run(call_gateway(config, ctype, cargs, timeout_s=args.timeout))
    if args.json:
        print(json.dumps(result))
    elif result.get("status") != "ok":
        print(f"storeedge tags {args.tags_command}: {result.get('reason')}", file=sys.stderr)
    else:
        for entry in result["result"]["tags"]:
            detail = entry.get("reason") or ", ".join(
                f"{k}={v}" for k, v in entry.items() if k not in ("tag", "status")
            )
            print(f"{entry['tag']}: {entry['status']} {detail}")
    if result.get("status") != "ok":
        return EXIT_FAIL
    return EXIT_OK if result["result"]["error"] == 0 else EXIT_FAIL


def _cmd_counts(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from agents.field import follow_streams
    from agents.gateway.config import load_config

    _setup_logging(args.verbose, default=logging.ERROR)
    config = load_config(args.config)

    def emit(stream: str, data: Any) -> None:
        if isinstance(data, dict) and "line" in data:
            print(
                f"{stream} {data.get('line')}: in {data.get('visits_a_to_b')} out {data.get('visits_b_to_a')} "
                f"(events {data.get('events_a_to_b')}/{data.get('events_b_to_a')})",
                flush=True,
            )
        else:
            print(f"{stream}: {json.dumps(data)}", flush=True)

    async def follow() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        def following() -> None:
            print(
                f"following the counts of {config.store_id}/{config.gateway_id}; intervals appear as the gateway "
                "closes them (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )

        await follow_streams(config, "counts/", emit, stop, on_following=following)

    asyncio.run(follow())
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    """Exit 0 when valid (devices not plugged in yet are warnings), 2 when invalid or a named file is missing."""
    from agents.core.urls import redact_url
    from agents.gateway.config import load_config
    from agents.preflight import check_paths

    config = load_config(args.file)
    problems = check_paths(config, yaml_text=args.file.read_text(encoding="utf-8"), root=args.root)
    for problem in problems:
        print(f"{args.file}: {problem.severity}: {problem}", file=sys.stderr)
    missing = sum(problem.is_error for problem in problems)
    if missing:
        print(f"{args.file}: {missing} missing file(s): fix the paths above or put the files there", file=sys.stderr)
        return EXIT_USAGE
    broker = redact_url(config.broker.url)
    warnings = f", {len(problems)} warning(s)" if problems else ""
    print(f"{args.file}: OK (store {config.store_id}, gateway {config.gateway_id}, broker {broker}){warnings}")
    return EXIT_OK


def _cmd_cloud(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from agents.cloud.sink import CloudSink, SinkStore
    from agents.core.config import MqttProtocol

    _setup_logging(args.verbose)
    if args.report_only:
        if not args.db.is_file():
            # opening would create an empty database and report zeros for a mistyped path
            raise CliError(f"no sink database at {args.db} (check --db)", EXIT_USAGE)
        store = SinkStore(args.db)
        try:
            print(json.dumps(store.report(), indent=2))
        finally:
            store.close()
        return EXIT_OK
    if args.broker is None:
        raise CliError("--broker is required (unless --report-only)", EXIT_USAGE)
    sink = CloudSink(
        args.broker, args.db, client_id=args.client_id, protocol=MqttProtocol(args.protocol), tls=_tls_from_args(args)
    )
    console = _stderr_console()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sink.session.request_stop)
        async with asyncio.TaskGroup() as group:
            runner = group.create_task(sink.run(), name="cloud:sink")
            while not runner.done():
                await asyncio.wait([runner], timeout=args.interval)
                c = sink.store.counters
                health = sink.session.health
                error = f" ({health.last_error})" if health.state != "connected" and health.last_error else ""
                console.print(
                    f"[cloud] {health.state}{error}: stored {c.get('stored', 0)}, "
                    f"duplicates {c.get('duplicates', 0)}, invalid {c.get('invalid', 0)}"
                )

    try:
        asyncio.run(serve())
        print(json.dumps(sink.store.report(), indent=2))
    finally:
        sink.close()
    return EXIT_OK


def _cmd_sim(args: argparse.Namespace) -> int:
    import asyncio

    from sim.harness import builtin_scenarios, load_scenario, print_summary, run_scenario

    if args.sim_command == "board":
        from sim.board import BoardRuntimeError, main_board

        _setup_logging(args.verbose, default=logging.WARNING)
        try:
            return main_board(args.link, args.state_dir)
        except BoardRuntimeError as exc:
            raise CliError(str(exc)) from exc
    if args.sim_command == "gateway":
        return _sim_gateway(args)
    if args.sim_command == "list":
        for name in sorted(builtin_scenarios()):
            scenario = load_scenario(name)
            print(f"{name}: {scenario.description}")
        return EXIT_OK
    from rich.console import Console

    _setup_logging(args.verbose, default=logging.WARNING)
    scenario = load_scenario(args.scenario)
    console = Console(stderr=True)
    report: dict[str, Any] = asyncio.run(
        run_scenario(
            scenario,
            duration_s=args.duration,
            broker_url=args.broker,
            console=console,
            artifacts_dir=args.report.with_name(args.report.stem + "-previews") if args.report else None,
        )
    )
    print_summary(report, Console())
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"report written to {args.report}")
    # lost messages, tags left unapplied, agents that crashed: each is listed in the report and the summary
    return EXIT_FAIL if report["failures"] else EXIT_OK


def _sim_gateway(args: argparse.Namespace) -> int:
    import asyncio

    from agents.gateway.config import load_config
    from agents.gateway.runtime import Gateway, run_until_signalled
    from sim.loadgen import loadgen_agents, parse_load_spec

    _setup_logging(args.verbose)
    try:
        load = parse_load_spec(args.load) if args.load else None
    except ValueError as exc:
        raise CliError(f"--load: {exc}", EXIT_USAGE) from exc
    config = load_config(args.config)
    asyncio.run(run_until_signalled(Gateway(config, extra_agents=loadgen_agents(load))))
    return EXIT_OK


def _cmd_label(args: argparse.Namespace) -> int:
    from agents.tags.panels import UnknownPanelError
    from agents.tags.render import LabelFieldsError, TemplateError, load_template, render_label

    try:
        fields = json.loads(args.fields)
    except json.JSONDecodeError as exc:
        raise CliError(f"--fields is not valid JSON: {exc}", EXIT_USAGE) from exc
    if not isinstance(fields, dict):
        raise CliError("--fields must be a JSON object", EXIT_USAGE)
    try:
        template = load_template(args.template) if args.template else None
        image = render_label(fields, args.panel, template)
    except (LabelFieldsError, TemplateError, UnknownPanelError, OSError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save_png(args.out, scale=args.scale)
    print(f"{args.out}: {args.panel}, content hash {image.content_hash()[:16]}")
    return EXIT_OK


def _progress_printer(enabled: bool = True) -> Any:
    """A ``progress(message)`` callback for long benchmarks: one line on stderr each (stdout keeps the JSON)."""

    def progress(message: str) -> None:
        if enabled:
            print(f"... {message}", file=sys.stderr, flush=True)

    return progress


def _cmd_bench(args: argparse.Namespace) -> int:
    import asyncio

    _setup_logging(args.verbose, default=logging.WARNING)
    if args.bench_command == "footfall":
        return _bench_footfall(args)
    if args.bench_command == "tags-ble":
        from agents.bench.tags_ble import run_tags_ble_bench

        try:
            parallel = tuple(int(n) for n in args.parallel.split(",") if n.strip())
        except ValueError:
            raise CliError("--parallel must be comma-separated integers", EXIT_USAGE) from None
        result = asyncio.run(run_tags_ble_bench(args.tags, parallel, args.panel, progress=_progress_printer()))
        print(json.dumps(result, indent=None if args.json else 2))
        return EXIT_OK
    from agents.bench.uplink import run_uplink_bench
    from agents.core.config import MqttProtocol

    _progress_printer()(
        f"{args.rounds} rounds of {args.messages} messages, bare paho then the durable outbox, to {args.broker}"
    )
    result = asyncio.run(
        run_uplink_bench(
            args.broker,
            args.messages,
            inflight=args.inflight,
            payload_bytes=args.payload_bytes,
            protocol=MqttProtocol(args.protocol),
            rounds=args.rounds,
        )
    )
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return EXIT_OK


def _bench_footfall(args: argparse.Namespace) -> int:
    from agents.bench.footfall import FootfallBenchOptions, run_footfall_bench
    from agents.footfall.sources import SourceError

    try:
        result = run_footfall_bench(
            FootfallBenchOptions(
                line=args.line,
                video=args.video,
                model=args.model,
                detector_type=args.detector,
                dets=args.dets,
                gt=args.gt,
                fps=args.fps,
                score_threshold=args.score_threshold,
                threads=args.threads,
                hysteresis_px=args.hysteresis,
                visit_window_s=args.visit_window,
            ),
            progress=_progress_printer(),
        )
    except (ValueError, OSError, SourceError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
