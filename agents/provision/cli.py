"""Command line of the installer tool: ``tools/flash.py`` and ``storeedge flash`` both call :func:`main`.

    flash.py gateway --target DIR --store-id S --gateway-id G --broker-url URL [--broker-ca FILE]
                     [--ca-cert FILE --ca-key FILE] [--template FILE] [--labels DIR] [--dry-run] [--force]
    flash.py gateway --batch stores.csv --target DIR [same shared options]
    flash.py device --port PATH [--verify] (--config-json FILE|JSON | --esl-address G/ID --bus NAME)
    flash.py esp32-base --port PATH --image FILE [--chip esp32] [--baud N] [--erase-all] [--print-args]

Exit codes: 0 done; 1 failed (batch: some rows failed); 2 bad input; 3 no such port; 4 no REPL / REPL failure;
5 board filesystem full; 6 hash mismatch after writing; 7 esptool missing or failed (see agents.provision.errors).

The command line only parses, prints and maps errors to exit codes; the work is in :mod:`agents.provision.gateway`,
:mod:`agents.provision.device` and :mod:`agents.provision.esp32`, which take plain values and return reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from agents.provision.errors import ProvisionError, ProvisionInputError

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

_VERBS = {
    "create": ("created", "would create"),
    "update": ("updated", "would update"),
    "chmod": ("fixed mode of", "would fix mode of"),
}


def build_parser(prog: str = "flash.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="storeedge installer: provision gateways, flash tag boards")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gateway = commands.add_parser(
        "gateway",
        help="provision a gateway (or a CSV of them) into a target directory",
        description="Write identity, TLS files, validated config and systemd unit into --target "
        "(a mounted root partition or a staging folder). Re-running changes nothing; the key is never "
        "replaced without --force.",
    )
    gateway.add_argument(
        "--target", type=Path, required=True, help="root of the gateway's filesystem (or batch folder)"
    )
    gateway.add_argument("--store-id", help="store identifier (single gateway)")
    gateway.add_argument("--gateway-id", help="gateway identifier (single gateway)")
    gateway.add_argument(
        "--batch", type=Path, help="CSV with columns store_id,gateway_id[,broker_url,store_name]; one gateway per row"
    )
    gateway.add_argument("--broker-url", help="mqtts://host:port (default for batch rows without broker_url)")
    gateway.add_argument(
        "--broker-ca", type=Path, help="CA certificate that verifies the broker (copied to the target)"
    )
    gateway.add_argument("--ca-cert", type=Path, help="CA certificate to sign the gateway's client certificate")
    gateway.add_argument(
        "--ca-key", type=Path, help="the CA's private key (passphrase from $STOREEDGE_CA_KEY_PASSWORD if encrypted)"
    )
    gateway.add_argument("--cert-days", type=int, default=730, help="client certificate validity (default 730)")
    gateway.add_argument("--template", type=Path, help="YAML config template ($store_id, $gateway_id, $store_name)")
    gateway.add_argument("--store-name", default="", help="store name printed on the label")
    gateway.add_argument("--labels", type=Path, help="folder for label PNGs (default: in the target)")
    gateway.add_argument("--storeedge-bin", default="/usr/local/bin/storeedge", help="storeedge path on the gateway")
    gateway.add_argument("--dry-run", action="store_true", help="list what would be written; write nothing")
    gateway.add_argument("--force", action="store_true", help="replace existing keys (new identity!)")

    device = commands.add_parser(
        "device",
        help="deploy the esltag firmware and a device config to a MicroPython board",
        description="Write firmware/esltag (to /lib/esltag) and /esltag_device.json through the raw REPL, "
        "verify, soft-reset and read the firmware version back.",
    )
    device.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    device.add_argument("--verify", action="store_true", help="check every file's sha256, computed on the board")
    device.add_argument("--config-json", help="device settings: a JSON object or a file holding one")
    device.add_argument("--esl-address", help="the tag's ESL address, group/id (e.g. 1/5)")
    device.add_argument("--bus", help="name of the serial bus the tag hangs on (e.g. bus-a)")
    device.add_argument("--firmware-dir", type=Path, help="firmware package folder (default: the installed esltag)")
    device.add_argument("--force", action="store_true", help="rewrite files even when the board has them already")
    device.add_argument("--baud", type=int, default=115200)
    device.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the REPL each attempt")

    esp = commands.add_parser(
        "esp32-base",
        help="write the MicroPython base image to an ESP32 board with esptool",
        description="Wraps esptool's Python API (pip install esptool). Needs a real board in its serial "
        "bootloader; hold BOOT and press RESET if it does not enter it by itself.",
    )
    esp.add_argument("--port", required=True)
    esp.add_argument("--image", type=Path, required=True, help="MicroPython firmware .bin")
    esp.add_argument("--chip", default="esp32")
    esp.add_argument("--baud", type=int, default=460800)
    esp.add_argument("--erase-all", action="store_true", help="erase the whole flash first")
    esp.add_argument("--print-args", action="store_true", help="print the esptool arguments and stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if args.command == "gateway":
            return _cmd_gateway(args, out, err)
        if args.command == "device":
            return _cmd_device(args, out, err)
        return _cmd_esp32(args, out)
    except ProvisionError as exc:
        err.print(f"flash.py {args.command}: {exc}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


# ---- gateway ------------------------------------------------------------------------------------------------


def _cmd_gateway(args: argparse.Namespace, out: Console, err: Console) -> int:
    from agents.provision import identity
    from agents.provision.batch import RowError, read_batch, row_errors_from
    from agents.provision.gateway import ConfigFieldError, GatewaySpec, apply_plan, plan_gateway

    if (args.ca_cert is None) != (args.ca_key is None):
        raise ProvisionInputError("--ca-cert and --ca-key must be given together")
    if args.batch is None and not (args.store_id and args.gateway_id):
        raise ProvisionInputError("give --store-id and --gateway-id, or --batch FILE")
    if args.batch is not None and (args.store_id or args.gateway_id):
        raise ProvisionInputError("--batch takes store and gateway ids from the CSV; drop --store-id/--gateway-id")
    ca = identity.CertificateAuthority.load(args.ca_cert, args.ca_key) if args.ca_cert else None
    base = GatewaySpec(
        store_id=args.store_id or "",
        gateway_id=args.gateway_id or "",
        broker_url=args.broker_url,
        store_name=args.store_name,
        template=args.template,
        broker_ca=args.broker_ca,
        cert_days=args.cert_days,
        storeedge_bin=args.storeedge_bin,
    )
    target: Path = args.target

    def provision(spec: GatewaySpec, root: Path, label: Path | None, console: Console) -> int:
        plan = plan_gateway(spec, root, ca=ca, force=args.force, label_path=label)
        prefix = f"{spec.store_id}/{spec.gateway_id}"
        for note in plan.notes:
            console.print(f"{prefix}: note: {note}", markup=False)
        for planned in plan.changes:
            verb = _VERBS[planned.action.value][1 if args.dry_run else 0]
            kind = "link" if planned.symlink_to else ("dir" if planned.content is None else "file")
            shown = planned.path.relative_to(target) if planned.path.is_relative_to(target) else planned.path
            detail = f"-> {planned.symlink_to}" if planned.symlink_to else f"({planned.mode:04o})"
            console.print(f"{prefix}: {verb} {kind} {shown} {detail}", markup=False)
        if not args.dry_run:
            apply_plan(plan)
        changed = len(plan.changes)
        total = len(plan.files)
        if changed == 0:
            console.print(f"{prefix}: up to date, nothing to do ({total} paths unchanged)", markup=False)
        else:
            verb = "would change" if args.dry_run else "changed"
            console.print(f"{prefix}: {verb} {changed} of {total} paths; key {plan.key_fingerprint}", markup=False)
        return changed

    if args.batch is None:
        try:
            provision(
                base, target, args.labels / f"{base.store_id}_{base.gateway_id}.png" if args.labels else None, out
            )
        except ConfigFieldError as exc:
            raise ProvisionInputError(str(exc)) from exc
        return EXIT_OK

    errors: list[RowError] = []
    rows = read_batch(args.batch, base, errors.append)
    for row_error in errors:
        err.print(f"{args.batch}: {row_error}", markup=False)
    labels = args.labels or target / "labels"
    done = unchanged = 0
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task("provisioning", total=len(rows))
        for row in rows:
            spec = row.spec
            progress.update(task, description=f"{spec.store_id}/{spec.gateway_id}")
            try:
                changed = provision(
                    spec,
                    target / spec.store_id / spec.gateway_id,
                    labels / f"{spec.store_id}_{spec.gateway_id}.png",
                    progress.console,
                )
            except ConfigFieldError as exc:
                for row_error in row_errors_from(row.line, exc):
                    errors.append(row_error)
                    progress.console.print(f"{args.batch}: {row_error}", markup=False)
            except ProvisionError as exc:
                row_error = RowError(row.line, "(row)", str(exc))
                errors.append(row_error)
                progress.console.print(f"{args.batch}: {row_error}", markup=False)
            else:
                done += 1
                unchanged += changed == 0
            progress.advance(task)
    failed_rows = len({e.line for e in errors})
    verb = "checked (dry run)" if args.dry_run else "provisioned"
    out.print(
        f"batch {args.batch}: {done} gateway(s) {verb} ({unchanged} already up to date), {failed_rows} row(s) failed",
        markup=False,
    )
    return EXIT_FAIL if errors else EXIT_OK


# ---- device -------------------------------------------------------------------------------------------------


def _device_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if args.config_json is not None:
        text = args.config_json
        if not text.lstrip().startswith("{"):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as exc:
                raise ProvisionInputError(f"--config-json: cannot read {args.config_json}: {exc.strerror}") from exc
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProvisionInputError(f"--config-json: not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ProvisionInputError("--config-json: must be a JSON object")
        settings.update(loaded)
    if args.esl_address is not None:
        settings["esl_address"] = args.esl_address
    if args.bus is not None:
        settings["bus"] = args.bus
    return settings


def _cmd_device(args: argparse.Namespace, out: Console, err: Console) -> int:
    from agents.provision import device
    from agents.provision.raw_repl import RawRepl, ReplTunables

    firmware_dir = args.firmware_dir or device.default_firmware_dir()
    firmware = device.collect_firmware(firmware_dir)
    version = device.firmware_version(firmware_dir)
    settings = _device_settings(args)
    config_file = (
        device.device_config(settings, version=version, digest=device.firmware_digest(firmware)) if settings else None
    )
    files = [*firmware] if config_file is None else [*firmware, config_file]
    total = sum(len(f.data) for f in files)
    tunables = ReplTunables(enter_timeout_s=args.timeout)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err
    )
    with RawRepl.open(args.port, baudrate=args.baud, tunables=tunables) as repl, progress:
        task = progress.add_task(f"deploying to {args.port}", total=total)

        def advance(path: str, count: int) -> None:
            progress.update(task, advance=count, description=path)

        report = device.deploy(
            repl,
            firmware,
            config_file,
            verify=args.verify,
            expected_version=version,
            force=args.force,
            progress=advance,
        )
    check = "sha256 verified on the board" if report.verified_sha256 else "sizes verified (add --verify for sha256)"
    out.print(
        f"{args.port}: esltag {report.firmware_version} deployed ({len(report.written)} written, "
        f"{len(report.unchanged)} unchanged; {check}); firmware digest {report.firmware_digest[:16]}; "
        f"{'raw-paste' if report.raw_paste else 'plain raw REPL'}",
        markup=False,
    )
    if config_file is None:
        state = "kept as it was" if report.device_config else "missing: give --esl-address and --bus"
        out.print(f"{args.port}: device config {device.DEVICE_CONFIG_PATH} {state}", markup=False)
    return EXIT_OK


# ---- esp32-base ---------------------------------------------------------------------------------------------


def _cmd_esp32(args: argparse.Namespace, out: Console) -> int:
    from agents.provision.esp32 import esptool_arguments, write_base_image

    arguments = esptool_arguments(
        port=args.port, image=args.image, chip=args.chip, baud=args.baud, erase_all=args.erase_all
    )
    if args.print_args:
        out.print("esptool " + " ".join(arguments), markup=False)
        return EXIT_OK
    write_base_image(arguments, port=args.port, image=args.image)
    return EXIT_OK
