"""``tagserver import FILE.csv``: offline conversions through a running server's ``/api/events``.

Rows are read, mapped and checked one by one (:mod:`.csv_rows`, then the server's own rules in
:func:`.parse.parse_server_event`); refused rows are reported with their line numbers and
reasons; the others are posted in batches with the API key, so that they take the container,
key scope, idempotency and delivery path of every server event (with the durable outbox when the
server has one). A batch that fails to arrive (network, 5xx, 429) is resent as it is: the
server's idempotency answers the repeats as duplicates. ``dry_run`` prints the events instead.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from tagserver.exceptions import HitRejected
from tagserver.server_events.csv_rows import (
    ColumnMap,
    CsvImportError,
    Row,
    load_mapping,
    map_columns,
    read_rows,
    row_event,
)
from tagserver.server_events.parse import parse_server_event

DEFAULT_BATCH = 500
SEND_ATTEMPTS = 5


@dataclass
class ImportReport:
    """Counts of one import; ``refused`` holds ``(line, reason)`` of every refused row."""

    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


class Progress:
    """A one-line progress display on ``stream`` (only when it is a terminal): rows, rows/s and
    the share of the file read, redrawn at most 10 times a second."""

    def __init__(self, stream: IO[str], *, total_bytes: int, enabled: bool) -> None:
        self.stream = stream
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, rows: int, position: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 0.1):
            return
        self._last = now
        rate = rows / max(now - self.started, 1e-6)
        share = min(position / self.total, 1.0)
        bar = "#" * int(share * 30)
        self.stream.write(f"\r[{bar:<30}] {share:4.0%} {rows:,} rows {rate:,.0f} rows/s")
        if final:
            self.stream.write("\n")
        self.stream.flush()


class BatchSender:
    """Posts batches to ``{url}/api/events`` with ``Authorization: Bearer <key>``; retries a batch
    that did not arrive (network error, 429, 5xx) up to :data:`SEND_ATTEMPTS` times."""

    def __init__(self, url: str, key: str, *, client: httpx.Client | None = None) -> None:
        self.endpoint = url.rstrip("/") + "/api/events"
        self.client = client or httpx.Client(timeout=60.0)
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    def send(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The per-event answers; raises ``RuntimeError`` when the server refuses the request
        (401, 4xx) or stays unreachable."""
        body = json.dumps({"data": events}, ensure_ascii=False).encode()
        problem = ""
        for attempt in range(SEND_ATTEMPTS):
            try:
                response = self.client.post(self.endpoint, content=body, headers=self.headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    answers: list[dict[str, Any]] = response.json()["events"]
                    return answers
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise RuntimeError(f"{self.endpoint} refused the batch: {problem}")
            time.sleep(min(0.5 * 2**attempt, 8.0))
        raise RuntimeError(f"{self.endpoint} unreachable after {SEND_ATTEMPTS} attempts: {problem}")


def run_import(
    path: Path,
    *,
    action_source: str,
    event_name: str = "Purchase",
    mapping_path: Path | None = None,
    default_country: str | None = None,
    dry_run: bool = False,
    send: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    batch_size: int = DEFAULT_BATCH,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
    progress: bool | None = None,
    encoding: str = "utf-8-sig",
) -> int:
    """Import ``path``; returns the exit status: 0 every row accepted (or a duplicate), 1 some
    rows refused, 2 the file, the mapping or the server could not be used at all.

    Refusals go to ``err`` as ``line N: reason`` while the file streams; ``dry_run`` writes each
    event that would be sent to ``out`` as one JSON line and needs no server (``send``).
    """
    report = ImportReport()
    try:
        mapping = load_mapping(mapping_path)
        raw = path.open("rb")
    except (CsvImportError, OSError) as exc:
        err.write(f"tagserver import: {exc}\n")
        return 2
    total = os.fstat(raw.fileno()).st_size
    stream = io.TextIOWrapper(raw, encoding=encoding, newline="")
    bar = Progress(err, total_bytes=total,
                   enabled=err.isatty() if progress is None else progress)
    try:
        header, rows = read_rows(stream)
        columns = map_columns(header, mapping)
        _describe_columns(columns, header, err)
        if not columns.columns:
            raise CsvImportError(
                f"{path}: no recognised column in the header row {header[:5]!r}; the first line "
                "must name the columns (email, phone, value, ...) or give --map mapping.json"
            )
        batch: list[dict[str, Any]] = []
        lines: list[int] = []
        for row in rows:
            report.rows += 1
            event = _checked_event(row, columns, action_source=action_source,
                                   event_name=event_name, default_country=default_country,
                                   report=report, err=err)
            if event is not None:
                if dry_run:
                    out.write(json.dumps(event, ensure_ascii=False) + "\n")
                    report.accepted += 1
                else:
                    batch.append(event)
                    lines.append(row.line)
                    if len(batch) >= batch_size:
                        _flush(batch, lines, send, report, err)
                        batch, lines = [], []
            bar.update(report.rows, raw.tell())
        if batch:
            _flush(batch, lines, send, report, err)
        bar.update(report.rows, total, final=True)
    except UnicodeDecodeError as exc:
        err.write(f"\ntagserver import: {path}: not {encoding} text near byte {exc.start} "
                  "(hint: --encoding cp1252 for an Excel export)\n")
        return 2
    except (CsvImportError, RuntimeError) as exc:
        err.write(f"\ntagserver import: {exc}\n")
        return 2
    finally:
        stream.close()
    verb = "would send" if dry_run else "accepted"
    err.write(f"{path}: {report.rows} rows: {report.accepted} {verb}, {report.duplicates} "
              f"duplicates, {len(report.refused)} refused\n")
    return 1 if report.refused else 0


def _describe_columns(columns: ColumnMap, header: list[str], err: IO[str]) -> None:
    used = ", ".join(f"{target}={header[i]!r}" for target, i in columns.columns.items())
    err.write(f"columns: {used}\n")
    if columns.ignored:
        err.write(f"ignored columns: {', '.join(columns.ignored)}\n")


def _checked_event(
    row: Row, columns: ColumnMap, *, action_source: str, event_name: str,
    default_country: str | None, report: ImportReport, err: IO[str],
) -> dict[str, Any] | None:
    """The row's event after the server's own checks, or ``None`` (reported as refused)."""
    try:
        event = row_event(row, columns, action_source=action_source, event_name=event_name,
                          default_country=default_country)
        parse_server_event(event, now=time.time(), default_country=default_country)
    except ValueError as exc:
        _refuse(report, row.line, str(exc), err)
        return None
    except HitRejected as exc:
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        _refuse(report, row.line, reasons or exc.error, err)
        return None
    return event


def _refuse(report: ImportReport, line: int, reason: str, err: IO[str]) -> None:
    report.refused.append((line, reason))
    err.write(f"\rline {line}: refused: {reason}\n")


def _flush(
    batch: list[dict[str, Any]], lines: list[int],
    send: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None,
    report: ImportReport, err: IO[str],
) -> None:
    assert send is not None, "a sender is needed unless dry_run"
    answers = send(batch)
    for line, answer in zip(lines, answers, strict=True):
        status = answer.get("status")
        if status == "accepted":
            report.accepted += 1
        elif status == "duplicate":
            report.duplicates += 1
        else:
            reasons = "; ".join(f"{e.get('field')}: {e.get('message')}"
                                for e in answer.get("errors", []))
            _refuse(report, line, f"server: {reasons}", err)
