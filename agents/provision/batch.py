"""Batch provisioning from a CSV of stores and gateways (``flash.py gateway --batch stores.csv``).

Installers set up many stores a day; Raspberry Pi Imager writes one card at a time and has no batch mode. One CSV
row per gateway:

    store_id     required  store identifier, e.g. "store-0042"
    gateway_id   required  gateway identifier, unique in the file, e.g. "gw-0042-a"
    broker_url   optional  mqtts://host:port for this gateway; defaults to --broker-url
    store_name   optional  printed on the label

Each row is provisioned into ``<target>/<store_id>/<gateway_id>/`` (one root tree per gateway) with its label in
``<target>/labels/<store_id>_<gateway_id>.png``. Rows are independent: a bad row is reported with its line number
and column, and the others still go through; the summary counts each outcome.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agents.provision.errors import ProvisionInputError
from agents.provision.gateway import ConfigFieldError, GatewaySpec

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "BatchRow", "RowError", "read_batch"]

REQUIRED_COLUMNS = ("store_id", "gateway_id")
COLUMNS = (*REQUIRED_COLUMNS, "broker_url", "store_name")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # the id rule of agents.core.config
_FIELD_TO_COLUMN = {"store_id": "store_id", "gateway_id": "gateway_id", "broker.url": "broker_url"}


@dataclass(frozen=True)
class BatchRow:
    line: int  # line number in the CSV file (the header is line 1)
    spec: GatewaySpec


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.line}, column {self.column}: {self.message}"


def column_for_field(field_path: str) -> str:
    """The CSV column a config field came from (``template`` when it came from the template)."""
    return _FIELD_TO_COLUMN.get(field_path, "template")


def row_errors_from(line: int, error: ConfigFieldError) -> list[RowError]:
    return [RowError(line, column_for_field(path), message) for path, message in error.fields]


def read_batch(path: Path, base: GatewaySpec, on_error: Callable[[RowError], None]) -> list[BatchRow]:
    """Rows of ``path`` as specs (``base`` supplies the shared options); bad rows go to ``on_error``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ProvisionInputError(f"--batch: cannot read {path}: {exc.strerror}") from exc
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        header_problems = []
        if missing:
            header_problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            header_problems.append(f"unknown column(s) {', '.join(unknown)}")
        raise ProvisionInputError(f"--batch {path}: {'; '.join(header_problems)} (columns: {', '.join(COLUMNS)})")
    rows: list[BatchRow] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        values = {key: (value or "").strip() for key, value in record.items() if key is not None}
        if None in record:
            on_error(RowError(line, "(extra)", "more values than the header has columns"))
            continue
        problems = [
            RowError(line, column, f"{values[column]!r} is not an id (letters, digits, _ . -; up to 64)")
            for column in REQUIRED_COLUMNS
            if not _ID.match(values[column])
        ]
        gateway_id = values["gateway_id"]
        if gateway_id in seen:
            problems.append(RowError(line, "gateway_id", f"{gateway_id!r} is already used in row {seen[gateway_id]}"))
        if problems:
            for problem in problems:
                on_error(problem)
            continue
        seen[gateway_id] = line
        spec = replace(
            base,
            store_id=values["store_id"],
            gateway_id=gateway_id,
            broker_url=values.get("broker_url") or base.broker_url,
            store_name=values.get("store_name", ""),
        )
        rows.append(BatchRow(line, spec))
    return rows
