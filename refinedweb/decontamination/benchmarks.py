"""A benchmark file's items: JSONL (.jsonl, .json lines, gzipped or not), Parquet or CSV, the text of an item being
its listed fields joined by newlines (a list-valued field, e.g. answer choices, one line per element). A field
absent from an item is the user's mistake (one line naming file, item and field); a null field is empty."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from typing import Any

from ..errors import UserError


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(_value(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(_value(v) for v in value.values())
    return str(value)


def _rows(path: str, shown: str) -> Iterator[dict[str, Any]]:
    name = shown.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise UserError(f"benchmark {shown}: cannot read it as Parquet ({exc})") from None
        yield from table.to_pylist()
        return
    opener = gzip.open if shown.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if name.endswith(".csv"):
            yield from csv.DictReader(handle)
            return
        if not name.endswith((".jsonl", ".json", ".ndjson")):
            raise UserError(f"benchmark {shown}: give a .jsonl, .json (one object per line), .parquet or .csv file")
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"benchmark {shown}: line {line_no} is not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"benchmark {shown}: line {line_no} is not a JSON object")
            yield row


def read_items(path: str, fields: list[str], shown: str) -> list[str]:
    """Every item's text (`shown`: the file's name for messages, e.g. its URI)."""
    items = []
    try:
        for number, row in enumerate(_rows(path, shown), 1):
            missing = [f for f in fields if f not in row]
            if missing:
                raise UserError(f"benchmark {shown}: item {number} has no field '{missing[0]}' (its fields: "
                                f"{', '.join(list(row)[:8]) or 'none'}); set the benchmark's fields")
            items.append("\n".join(_value(row[f]) for f in fields))
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise UserError(f"benchmark {shown}: cannot read it ({type(exc).__name__}: {exc})") from None
    if not items:
        raise UserError(f"benchmark {shown} holds no items: an empty benchmark decontaminates nothing (check the "
                        "path, or remove it from decontamination.benchmarks)")
    return items

