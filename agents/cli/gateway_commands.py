"""Commands that run or inspect a gateway: ``run``, ``config check``, ``doctor``, ``tags ...``, ``counts``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from agents.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError, log, setup_logging, stderr_console


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from agents.core.urls import redact_url
    from agents.gateway.config import load_config
    from agents.gateway.runtime import Gateway, run_until_signalled
    from agents.preflight import check_paths

    setup_logging(args.verbose)
    config = load_config(args.config)
    # A missing model or video stops one camera, not the gateway: say so once, up front, and run the rest.
    for problem in check_paths(config, yaml_text=args.config.read_text(encoding="utf-8")):
        (log.error if problem.is_error else log.warning)("%s: %s", args.config, problem)
    log.info("starting gateway %s/%s, broker %s", config.store_id, config.gateway_id, redact_url(config.broker.url))
    asyncio.run(run_until_signalled(Gateway(config)))
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
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


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 1 with warnings, 2 with failures."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from agents.doctor import Doctor, exit_code, report, write_bundle

    setup_logging(args.verbose, default=logging.ERROR)
    doctor = Doctor(args.config, timeout_s=args.timeout)
    with stderr_console().status("running checks", spinner="dots"):
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


def cmd_tags(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from rich.console import Console
    from rich.table import Table

    from agents.field import call_gateway, tag_rows
    from agents.gateway.config import load_config

    setup_logging(args.verbose, default=logging.ERROR)
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
    with stderr_console().status(f"asking gateway {config.gateway_id} ({ctype})", spinner="dots"):
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


def cmd_counts(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from agents.field import follow_streams
    from agents.gateway.config import load_config

    setup_logging(args.verbose, default=logging.ERROR)
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
