"""The optional labels table of a dataset: CSV or JSONL with columns path, artist, genre, lyrics."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import DataError

COLUMNS = ("artist", "genre", "lyrics")
DEFAULT_NAMES = ("metadata.csv", "metadata.jsonl")


def find_metadata(data_dir: Path) -> Path | None:
    for name in DEFAULT_NAMES:
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """Labels keyed by the file's path relative to the table's folder (as written in the `path` column)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such metadata table")
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets often start their CSV with a byte-order mark
    except UnicodeDecodeError:
        raise DataError(f"{path}: metadata table is not UTF-8 text") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {number} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))  # keeps line breaks inside quoted lyrics
    else:
        raise DataError(f"{path}: metadata table must be .csv or .jsonl")
    table: dict[str, dict[str, str]] = {}
    for number, row in enumerate(rows, 1):
        if not row.get("path"):
            raise DataError(f"{path}: row {number} has no 'path' column")
        if not isinstance(row["path"], str):
            raise DataError(f"{path}: row {number}: 'path' must be a string, got {row['path']!r}")
        table[str(Path(row["path"]))] = {k: str(row.get(k) or "") for k in COLUMNS}
    return table
