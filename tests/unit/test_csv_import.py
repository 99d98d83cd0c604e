"""tagserver.server_events.csv_rows and importer: messy real-world CSV exports, offline."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tagserver.server_events.csv_rows import (
    CsvImportError,
    load_mapping,
    map_columns,
    parse_time,
    read_rows,
)
from tagserver.server_events.importer import run_import

NOW = int(time.time())
RECENT = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(NOW - 3 * 86400))


def run(path: Path, **kwargs: Any) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("action_source", "physical_store")
    kwargs.setdefault("dry_run", True)
    code = run_import(path, out=out, err=err, **kwargs)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_messy_export_bom_semicolons_quotes_empty_lines(tmp_path: Path) -> None:
    text = (
        "\ufeffE-Mail;Telefon;First Name;Amount;Currency;Order #;Date;Notes\r\n"
        "\r\n"
        f'jane@example.com;+49 30 1234567;Jane;"1.234,50";eur;A-1;{RECENT};"quoted; semicolon, comma"\r\n'
        "\r\n"
        f';;;5;EUR;A-2;{RECENT};"a note\r\nover two lines"\r\n'
        f"bob@example.com;;Bob;abc;EUR;A-3;yesterday;\r\n"
        f"\"ann@example.com\";;Ann;12;EUR;A-4;{NOW};\r\n"
        "\r\n"
    )
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("utf-8"))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"columns": {"phone": "Telefon"}, "value_locale": "de"}))
    code, events, err = run(path, mapping_path=mapping)
    assert code == 1
    assert [e["event_id"] for e in events] == ["purchase-A-1", "purchase-A-4"]
    first = events[0]
    assert first == {
        "event_name": "Purchase",
        "action_source": "physical_store",
        "event_time": NOW - 3 * 86400,
        "custom_data": {"value": 1234.5, "currency": "eur", "order_id": "A-1"},
        "user_data": {"em": "jane@example.com", "ph": "+49 30 1234567", "fn": "Jane"},
        "event_id": "purchase-A-1",
    }
    assert events[1]["event_time"] == NOW
    # line numbers are the file's: the row with the two-line note starts on line 5
    assert "line 5: refused: no customer information" in err
    assert "line 7: refused: event_time: expected unix seconds or an ISO 8601" in err
    assert "value: 'abc' is not a number" in err
    assert "ignored columns: Notes" in err
    assert err.rstrip().endswith("4 rows: 2 would send, 0 duplicates, 2 refused")


def test_comma_file_with_tabs_in_a_field_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "customer_id,phone_number,total,created_at,status\n"
        f'C-7,"+1 (650) 555-1212",19.99,{RECENT},"won, finally"\n'
    )
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"defaults": {"currency": "USD", "event_name": "Lead"}}))
    code, [event], _ = run(path, mapping_path=mapping, action_source="system_generated")
    assert code == 0
    assert event["event_name"] == "Lead"
    assert event["action_source"] == "system_generated"
    assert event["custom_data"] == {"value": 19.99, "currency": "USD"}
    assert event["user_data"] == {"external_id": "C-7", "ph": "+1 (650) 555-1212"}
    assert event["event_id"].startswith("import-")
    # the same row gives the same id: a second import is answered as duplicates
    assert run(path, mapping_path=mapping, action_source="system_generated")[1] == [event]


def test_server_rules_apply_locally(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    old = time.strftime("%Y-%m-%d", time.gmtime(NOW - 70 * 86400))
    path.write_text(f"email,value,currency,timestamp\na@b.example,5,EUR,{old}\n"
                    f"a@b.example,,EUR,{RECENT}\n")
    code, events, err = run(path)
    assert code == 1 and events == []
    assert "line 2: refused: event_time: too old: more than 62 days ago" in err
    assert "line 3: refused: custom_data: Purchase without value" in err


def test_phone_without_country_code_needs_a_country(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"phone,value,currency,date\n030 1234567,5,EUR,{RECENT}\n")
    assert run(path)[0] == 1
    code, [event], _ = run(path, default_country="DE")
    assert code == 0 and event["user_data"] == {"ph": "030 1234567"}


def test_mapping_problems_are_fatal(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("email\na@b.example\n")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"columns": {"emial": "email"}}))
    code, _, err = run(path, mapping_path=bad)
    assert code == 2 and "unknown field(s) emial" in err
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"columns": {"email": "Mail"}}))
    code, _, err = run(path, mapping_path=missing)
    assert code == 2 and "column 'Mail' for email is not in the header" in err
    with pytest.raises(CsvImportError):
        load_mapping(tmp_path / "nope.json")


def test_not_utf8_says_which_encoding_to_use(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"email,first_name,value,currency,date\na@b.example,Ren\xe9,5,EUR,{RECENT}\n"
                     .encode("latin-1"))
    code, _, err = run(path)
    assert code == 2 and "--encoding cp1252" in err
    code, [event], _ = run(path, encoding="cp1252")
    assert code == 0 and event["user_data"]["fn"] == "René"


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    assert run(empty)[0] == 2
    header = tmp_path / "header.csv"
    header.write_text("email;value\n")
    code, events, err = run(header)
    assert (code, events) == (0, [])
    assert "0 rows" in err


def test_parse_time_forms() -> None:
    assert parse_time("1700000000") == 1_700_000_000
    assert parse_time("1700000000123") == 1_700_000_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000
    assert parse_time("2023-11-14 23:13:20+01:00") == 1_700_000_000
    assert parse_time("2023-11-14") == 1_699_920_000
    with pytest.raises(ValueError):
        parse_time("14/11/2023")


def test_headers_fold_and_first_match_wins() -> None:
    header, rows = read_rows(io.StringIO("EMAIL|Order Number|Amount|Price\nx@y.z|7|1|2\n",
                                         newline=""))
    columns = map_columns(header, {})
    assert columns.columns == {"email": 0, "order_id": 1, "value": 2}
    assert columns.ignored == ("Price",)
    assert [r.cells for r in rows] == [["x@y.z", "7", "1", "2"]]


def test_progress_line_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"email,value,currency,date\na@b.example,5,EUR,{RECENT}\n")
    _, _, err = run(path, progress=True)
    assert "rows/s" in err and "100%" in err
    _, _, err = run(path)  # a StringIO is no terminal
    assert "rows/s" not in err
