"""Commands around the gateway: the reference cloud sink, the simulator, label rendering and the benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from agents.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    progress_printer,
    setup_logging,
    stderr_console,
    tls_from_args,
)


def cmd_cloud(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from agents.cloud.sink import CloudSink, SinkStore
    from agents.core.config import MqttProtocol

    setup_logging(args.verbose)
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
        args.broker, args.db, client_id=args.client_id, protocol=MqttProtocol(args.protocol), tls=tls_from_args(args)
    )
    console = stderr_console()

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


def cmd_sim(args: argparse.Namespace) -> int:
    import asyncio

    from sim.harness import builtin_scenarios, load_scenario, print_summary, run_scenario

    if args.sim_command == "board":
        from sim.board import BoardRuntimeError, main_board

        setup_logging(args.verbose, default=logging.WARNING)
        try:
            return main_board(args.link, args.state_dir)
        except BoardRuntimeError as exc:
            raise CliError(str(exc)) from exc
    if args.sim_command == "gateway":
        return sim_gateway(args)
    if args.sim_command == "list":
        for name in sorted(builtin_scenarios()):
            scenario = load_scenario(name)
            print(f"{name}: {scenario.description}")
        return EXIT_OK
    from rich.console import Console

    setup_logging(args.verbose, default=logging.WARNING)
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


def sim_gateway(args: argparse.Namespace) -> int:
    import asyncio

    from agents.gateway.config import load_config
    from agents.gateway.runtime import Gateway, run_until_signalled
    from sim.loadgen import loadgen_agents, parse_load_spec

    setup_logging(args.verbose)
    try:
        load = parse_load_spec(args.load) if args.load else None
    except ValueError as exc:
        raise CliError(f"--load: {exc}", EXIT_USAGE) from exc
    config = load_config(args.config)
    asyncio.run(run_until_signalled(Gateway(config, extra_agents=loadgen_agents(load))))
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
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


def cmd_bench(args: argparse.Namespace) -> int:
    import asyncio

    setup_logging(args.verbose, default=logging.WARNING)
    if args.bench_command == "footfall":
        return bench_footfall(args)
    if args.bench_command == "visitors":
        return bench_visitors(args)
    if args.bench_command == "tags-ble":
        from agents.bench.tags_ble import run_tags_ble_bench

        try:
            parallel = tuple(int(n) for n in args.parallel.split(",") if n.strip())
        except ValueError:
            raise CliError("--parallel must be comma-separated integers", EXIT_USAGE) from None
        result = asyncio.run(run_tags_ble_bench(args.tags, parallel, args.panel, progress=progress_printer()))
        print(json.dumps(result, indent=None if args.json else 2))
        return EXIT_OK
    from agents.bench.uplink import run_uplink_bench
    from agents.core.config import MqttProtocol

    progress_printer()(
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


def bench_footfall(args: argparse.Namespace) -> int:
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
            progress=progress_printer(),
        )
    except (ValueError, OSError, SourceError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return EXIT_OK


def bench_visitors(args: argparse.Namespace) -> int:
    from agents.bench.visitors import VisitorsBenchOptions, parse_views, run_visitors_bench
    from agents.core.errors import StoreedgeError
    from agents.footfall.sources import SourceError

    try:
        result = run_visitors_bench(
            VisitorsBenchOptions(
                video=args.video,
                reid_model=args.reid_model,
                reid_type=args.reid_type,
                model=args.model,
                detector_type=args.detector,
                line=args.line,
                gt=args.gt,
                persons=args.persons,
                views=parse_views(args.views) if args.views else None,
                sample_fps=args.sample_fps,
                threads=args.threads,
                match_threshold=args.match_threshold,
            ),
            progress=progress_printer(),
        )
    except (ValueError, OSError, SourceError, StoreedgeError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return EXIT_OK
