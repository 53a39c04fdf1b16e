"""The ``storeedge`` argument parser: every command, sub-command and option (no command runs here)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agents.cli.common import (
    MQTT_PROTOCOLS,
    add_tls_flags,
    broker_url_arg,
    line_arg,
    positive_float,
    positive_int,
)


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (see :mod:`agents`)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from agents import __version__

        print(f"storeedge {__version__}")
        parser.exit()


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
    doctor.add_argument("--timeout", type=positive_float, default=5.0, help="seconds per network probe")

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
        sub.add_argument("--timeout", type=positive_float, default=30.0, help="seconds to wait for the answer")
    counts = commands.add_parser("counts", help="follow the footfall counts the running gateway sends")
    counts.add_argument("--live", action="store_true", help="follow the counts as they arrive (the default)")
    counts.add_argument("--config", "-c", type=Path, default=Path("/etc/storeedge/gateway.yaml"))

    cloud = commands.add_parser("cloud", help="run the reference cloud sink (stores uplink traffic in SQLite)")
    cloud.add_argument("--broker", type=broker_url_arg, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    cloud.add_argument("--db", type=Path, required=True, help="SQLite file to store messages in")
    cloud.add_argument("--client-id", default="storeedge-cloud-sink")
    cloud.add_argument("--interval", type=positive_float, default=10.0, help="seconds between status lines")
    cloud.add_argument("--report-only", action="store_true", help="print the report of --db and exit")
    add_tls_flags(cloud)

    label = commands.add_parser("label", help="e-ink price labels")
    label_sub = label.add_subparsers(dest="label_command", required=True, metavar="SUBCOMMAND")
    render = label_sub.add_parser("render", help="render a label to a PNG preview")
    render.add_argument("--template", type=Path, help="template YAML (default: the built-in price label)")
    render.add_argument("--fields", required=True, help='JSON object, e.g. \'{"name": "Tea", "price": 2.49}\'')
    render.add_argument("--panel", required=True, help="panel name, e.g. 296x128-bwr or 400x300-bw")
    render.add_argument("--out", type=Path, required=True, help="PNG file to write")
    render.add_argument("--scale", type=positive_int, default=1, help="integer zoom of the preview")

    sim = commands.add_parser("sim", help="the simulator")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")
    sim_run = sim_sub.add_parser("run", help="run a simulator scenario")
    sim_run.add_argument("--scenario", help="built-in scenario name or scenario YAML file (default: default)")
    sim_run.add_argument("--duration", type=positive_float, help="seconds (overrides the scenario)")
    sim_run.add_argument("--broker", type=broker_url_arg, help="use this broker instead of the embedded one")
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
    bench_uplink.add_argument("--broker", type=broker_url_arg, required=True)
    bench_uplink.add_argument("--messages", type=positive_int, default=10000)
    bench_uplink.add_argument("--inflight", type=positive_int, default=100)
    bench_uplink.add_argument("--payload-bytes", type=int, default=128)
    bench_uplink.add_argument("--protocol", choices=MQTT_PROTOCOLS, default=MQTT_PROTOCOLS[0])
    bench_uplink.add_argument("--rounds", type=positive_int, default=3, help="baseline/durable pairs (medians)")
    bench_uplink.add_argument("--json", action="store_true", help="print only the JSON object")
    bench_ble = bench_sub.add_parser("tags-ble", help="modelled fleet time of a BLE price change vs a naive baseline")
    bench_ble.add_argument("--tags", type=positive_int, default=1000)
    bench_ble.add_argument("--parallel", default="1,2,4,8", help="comma-separated connection counts")
    bench_ble.add_argument("--panel", default="296x128-bwr")
    bench_ble.add_argument("--json", action="store_true", help="print only the JSON object")
    bench_footfall = bench_sub.add_parser(
        "footfall", help="detect, track and count one video against the supervision baseline"
    )
    bench_footfall.add_argument("--video", type=Path, help="video file (.avi, .mp4, .mpg)")
    bench_footfall.add_argument("--model", type=Path, help="ONNX person detector (default: the shipped YOLOX-Nano)")
    bench_footfall.add_argument("--detector", choices=["auto", "yolox", "ssd", "yolov8"], default="auto")
    bench_footfall.add_argument("--line", type=line_arg, required=True, help="X1,Y1,X2,Y2 in pixels")
    bench_footfall.add_argument("--gt", type=Path, help="MOT ground truth (gt.txt) for MOTA/IDF1")
    bench_footfall.add_argument("--dets", type=Path, help="MOT detections instead of running the detector")
    bench_footfall.add_argument("--fps", type=positive_float, help="frame rate when the video does not say")
    bench_footfall.add_argument("--score-threshold", type=float, help="detector or --dets score cut")
    bench_footfall.add_argument("--threads", type=positive_int, default=2, help="detector threads")
    bench_footfall.add_argument("--hysteresis", type=float, default=8.0, help="line hysteresis band, pixels")
    bench_footfall.add_argument("--visit-window", type=positive_float, default=600.0, help="seconds")
    bench_footfall.add_argument("--json", action="store_true", help="print only the JSON object")
    bench_visitors = bench_sub.add_parser(
        "visitors", help="distinct people of one video, with appearance re-identification and without"
    )
    bench_visitors.add_argument("--video", type=Path, required=True, help="video file (.avi, .mp4, .mpg)")
    bench_visitors.add_argument("--model", type=Path, help="ONNX person detector (default: the shipped YOLOX-Nano)")
    bench_visitors.add_argument("--detector", choices=["auto", "yolox", "ssd", "yolov8"], default="auto")
    bench_visitors.add_argument("--reid-model", type=Path, required=True, help="ONNX re-identification model")
    bench_visitors.add_argument("--reid-type", choices=["auto", "omz", "osnet"], default="auto")
    bench_visitors.add_argument("--match-threshold", type=float, help="cosine to match (default: the model's)")
    bench_visitors.add_argument("--line", type=line_arg, help="X1,Y1,X2,Y2: count people who crossed it")
    bench_visitors.add_argument("--gt", type=Path, help="MOT ground truth (gt.txt) for false merges and splits")
    bench_visitors.add_argument("--persons", type=Path, help="JSON grouping the ground truth's ids into people")
    bench_visitors.add_argument("--views", help="X0-X1,X0-X1: vertical strips run as cameras of one store")
    bench_visitors.add_argument("--sample-fps", type=positive_float, help="frames per second taken from the video")
    bench_visitors.add_argument("--threads", type=positive_int, default=2, help="detector threads")
    bench_visitors.add_argument("--json", action="store_true", help="print only the JSON object")
    return parser
