"""Offline conversions from a CSV export: rows streamed from the file, mapped to server events.

The separator (``,`` ``;`` tab ``|``) is the one the header line uses most; a UTF-8 byte order
mark is dropped; quoted fields may hold separators and line breaks; empty lines are skipped.
Headers are matched after folding (lower case, runs of other characters → ``_``:
``"E-Mail"`` → ``e_mail``) against :data:`DEFAULT_COLUMNS`, or as a mapping file names them::

    {"columns": {"email": "Customer E-Mail", "value": "Gross"},
     "defaults": {"currency": "EUR", "event_name": "Purchase"},
     "value_locale": "de"}

Each row becomes the JSON event ``POST /api/events`` takes (raw customer data: hashing happens
in the Meta tag, as for every event). Times: unix seconds (13 digits: milliseconds) or ISO 8601;
a time without offset is UTC.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tagserver.meta.normalize import hash_user_data, parse_value

#: Field → folded header names recognised without a mapping file.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "event_name": ("event_name", "event", "event_type"),
    "event_id": ("event_id",),
    "event_time": ("timestamp", "event_time", "time", "datetime", "date", "created_at",
                   "order_date", "purchase_date", "transaction_date"),
    "action_source": ("action_source",),
    "value": ("value", "amount", "total", "order_total", "revenue", "price", "sales"),
    "currency": ("currency", "currency_code", "curr"),
    "order_id": ("order_id", "order", "order_number", "order_no", "transaction_id", "receipt_id",
                 "invoice_id"),
    "email": ("email", "e_mail", "email_address", "mail", "em", "customer_email"),
    "phone": ("phone", "phone_number", "telephone", "tel", "mobile", "cell", "ph"),
    "first_name": ("first_name", "firstname", "given_name", "first", "fn"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "last", "ln"),
    "city": ("city", "town", "ct"),
    "state": ("state", "province", "region", "st"),
    "zip": ("zip", "zip_code", "zipcode", "postal_code", "postcode", "plz", "zp"),
    "country": ("country", "country_code"),
    "date_of_birth": ("date_of_birth", "dob", "birthday", "birth_date", "db"),
    "gender": ("gender", "sex", "ge"),
    "external_id": ("external_id", "customer_id", "client_id", "user_id", "member_id"),
    "lead_id": ("lead_id",),
}
#: Import field → Meta ``user_data`` key.
USER_KEYS = {
    "email": "em", "phone": "ph", "first_name": "fn", "last_name": "ln", "city": "ct",
    "state": "st", "zip": "zp", "country": "country", "date_of_birth": "db", "gender": "ge",
    "external_id": "external_id", "lead_id": "lead_id",
}  # fmt: skip
#: Keys Meta can match an offline event on by themselves.
MATCH_KEYS = ("em", "ph", "external_id")
SEPARATORS = (",", ";", "\t", "|")
_FOLD = re.compile(r"[^a-z0-9]+")


class CsvImportError(ValueError):
    """The file or the mapping cannot be used at all (no header, unknown field, bad JSON)."""


@dataclass(frozen=True)
class ColumnMap:
    """Which column index feeds each field, fixed values for fields without a column, and the
    locale of decimal commas in ``value`` (``de``: ``"1.234,50"``)."""

    columns: Mapping[str, int]
    defaults: Mapping[str, str] = field(default_factory=dict)
    value_locale: str | None = None
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """One data row: its first line number in the file (1-based) and its cells."""

    line: int
    cells: list[str]


def fold_header(name: str) -> str:
    """``" E-Mail "`` → ``"e_mail"``."""
    return _FOLD.sub("_", name.strip().lstrip("\ufeff").lower()).strip("_")


def load_mapping(path: Path | None) -> dict[str, Any]:
    """The mapping file as a dict (``{}`` without one); raises :class:`CsvImportError`."""
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CsvImportError(f"{path}: cannot read the mapping: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - {"columns", "defaults", "value_locale"}:
        raise CsvImportError(f"{path}: expected an object with columns, defaults, value_locale")
    for section in ("columns", "defaults"):
        entries = raw.get(section, {})
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            raise CsvImportError(f"{path}: {section}: expected an object of strings")
        unknown = sorted(set(entries) - set(DEFAULT_COLUMNS))
        if unknown:
            raise CsvImportError(f"{path}: {section}: unknown field(s) {', '.join(unknown)}; "
                               f"known: {', '.join(DEFAULT_COLUMNS)}")
    return raw


def map_columns(header: list[str], mapping: Mapping[str, Any]) -> ColumnMap:
    """The :class:`ColumnMap` of ``header``: the mapping file's columns first (matched exactly,
    then folded), then :data:`DEFAULT_COLUMNS`. Raises :class:`CsvImportError` when a mapped
    column is missing."""
    folded = [fold_header(h) for h in header]
    columns: dict[str, int] = {}
    for target, source in mapping.get("columns", {}).items():
        if source in header:
            columns[target] = header.index(source)
        elif fold_header(source) in folded:
            columns[target] = folded.index(fold_header(source))
        else:
            raise CsvImportError(f"mapping: column {source!r} for {target} is not in the header "
                               f"({', '.join(header)})")
    used = set(columns.values())
    for target, names in DEFAULT_COLUMNS.items():
        if target in columns:
            continue
        for name in names:
            if name in folded and folded.index(name) not in used:
                columns[target] = folded.index(name)
                used.add(columns[target])
                break
    ignored = tuple(h for i, h in enumerate(header) if i not in used and h.strip())
    return ColumnMap(columns, dict(mapping.get("defaults", {})), mapping.get("value_locale"),
                     ignored)


def sniff_separator(line: str) -> str:
    """The separator the header ``line`` uses most (``,`` when none appears)."""
    counts = {sep: line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def read_rows(stream: IO[str]) -> tuple[list[str], Iterator[Row]]:
    """The header and an iterator over the data rows of ``stream`` (opened with
    ``newline=""``), streamed: one row in memory at a time. Raises :class:`CsvImportError` when
    there is no header."""
    first = ""
    skipped = 0
    for line in stream:
        if line.strip():
            first = line
            break
        skipped += 1
    if not first:
        raise CsvImportError("the file is empty: expected a header line")
    separator = sniff_separator(first.lstrip("\ufeff"))
    header = next(csv.reader([first.lstrip("\ufeff")], delimiter=separator))

    def rows() -> Iterator[Row]:
        reader = csv.reader(stream, delimiter=separator)
        offset = skipped + 1
        previous = 0
        for cells in reader:
            start = offset + previous + 1
            previous = reader.line_num
            if not cells or not any(c.strip() for c in cells):
                continue
            yield Row(start, cells)

    return header, rows()


def parse_time(text: str) -> int:
    """Unix seconds from ``text``: digits (seconds; 13 digits: milliseconds) or ISO 8601
    (``2024-05-01``, ``2024-05-01 13:45:00``, ``...T13:45:00+02:00``, ``...Z``; no offset: UTC).
    Raises ``ValueError``."""
    text = text.strip()
    if text.isdigit():
        number = int(text)
        return number // 1000 if number >= 10**12 else number
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected unix seconds or an ISO 8601 date/time "
                         "such as 2024-05-01 13:45:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def row_event(
    row: Row, columns: ColumnMap, *, action_source: str, event_name: str,
    default_country: str | None,
) -> dict[str, Any]:
    """The ``POST /api/events`` event of ``row``. Raises ``ValueError`` with every problem
    (``"field: reason; ..."``) when the row cannot become one."""
    values: dict[str, str] = dict(columns.defaults)
    for target, index in columns.columns.items():
        cell = row.cells[index].strip() if index < len(row.cells) else ""
        if cell:
            values[target] = cell
    problems: list[str] = []
    event: dict[str, Any] = {
        "event_name": values.get("event_name") or event_name,
        "action_source": values.get("action_source") or action_source,
    }
    if "event_time" in values:
        try:
            event["event_time"] = parse_time(values["event_time"])
        except ValueError as exc:
            problems.append(f"event_time: {exc}")
    else:
        problems.append("event_time: no timestamp column or value")
    custom: dict[str, Any] = {}
    if "value" in values:
        number = parse_value(values["value"], locale=columns.value_locale)
        if number is None:
            problems.append(f"value: {values['value'][:40]!r} is not a number (set value_locale "
                            "in the mapping for decimal commas)")
        else:
            custom["value"] = number
    for key in ("currency", "order_id"):
        if key in values:
            custom[key] = values[key]
    if custom:
        event["custom_data"] = custom
    user = {USER_KEYS[k]: v for k, v in values.items() if k in USER_KEYS}
    if user:
        event["user_data"] = user
    hashed = hash_user_data(user, default_country=default_country)
    if not any(key in hashed for key in MATCH_KEYS) and not user.get("lead_id", "").isdigit():
        problems.append("no customer information Meta can match on: a valid email, phone "
                        "(with country code, or a country column / --country), external_id "
                        "or lead_id")
    if problems:
        raise ValueError("; ".join(problems))
    if "event_id" in values:
        event["event_id"] = values["event_id"]
    elif "order_id" in values:
        event["event_id"] = f"{event['event_name'].lower()}-{values['order_id']}"
    else:  # a stable id: importing the same file twice within 48 h sends each row once
        canonical = json.dumps(event, sort_keys=True, ensure_ascii=False)
        event["event_id"] = "import-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return event
