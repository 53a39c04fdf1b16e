"""The ``storeedge`` command line: a thin shell over library functions.

storeedge --version
storeedge run --config FILE                 run the gateway agents until SIGTERM/SIGINT
storeedge config check FILE                 validate a gateway config (exit 0 valid, 2 invalid)
storeedge cloud --broker URL --db FILE      run the reference cloud sink
storeedge sim run [--scenario NAME|FILE] [--duration S] [--broker URL] [--report FILE]
storeedge sim board --link PATH [--state-dir DIR]
storeedge sim gateway --config FILE [--load SPEC]   a real gateway plus the simulator's synthetic load
storeedge bench uplink --broker URL --messages N [--json]
storeedge doctor [--config FILE] [--json] [--bundle FILE.tar.gz]
storeedge tags list|show|ping|led [--config FILE] ...
storeedge counts [--config FILE]         follow the footfall counts the gateway sends
storeedge flash gateway|device|esp32-base ...   the installer tool (same as tools/flash.py)

The package: :mod:`.parser` (every option), :mod:`.gateway_commands` (run, config, doctor, tags, counts),
:mod:`.tool_commands` (cloud, sim, label, bench), :mod:`.common` (exit codes, the one-line failure report,
logging). Module level imports only the standard library (see :mod:`.common`).
"""

from __future__ import annotations

import sys

from agents.cli.common import EXIT_OK, MQTT_PROTOCOLS, CliError, report_failure, setup_logging
from agents.cli.parser import build_parser

__all__ = ["EXIT_OK", "MQTT_PROTOCOLS", "CliError", "build_parser", "main", "setup_logging"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["flash"]:
        # the installer tool has its own parser (also run as tools/flash.py from a checkout)
        from agents.provision.cli import main as flash_main

        return flash_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.debug:
        args.verbose = max(args.verbose, 1)
    from agents.cli import gateway_commands as gateway
    from agents.cli import tool_commands as tools

    handler = {
        "run": gateway.cmd_run,
        "config": gateway.cmd_config,
        "cloud": tools.cmd_cloud,
        "sim": tools.cmd_sim,
        "label": tools.cmd_label,
        "bench": tools.cmd_bench,
        "doctor": gateway.cmd_doctor,
        "tags": gateway.cmd_tags,
        "counts": gateway.cmd_counts,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        return report_failure(args, exc)
