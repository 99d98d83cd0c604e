"""Benchmark: ``tagserver import`` of a 100,000-row CSV export — rows per second, peak memory.

Run from the repository root::

    .venv/bin/python bench/bench_import.py                # through a real server, 100,000 rows
    .venv/bin/python bench/bench_import.py --dry-run      # reading and checking only
    .venv/bin/python bench/bench_import.py --rows 20000

The CSV is generated into a temporary folder, streamed (one row in memory at a time): a BOM,
``;`` separators, quoted fields with separators inside, decimal commas, an empty line every 1,000
rows and 2 % of rows that must be refused (an unreadable date or no customer data). Each row has
an e-mail, a phone with its country code, first and last name, city, zip, country, an amount,
a currency, an order id and an ISO 8601 time within the last 30 days.

Without ``--dry-run`` a real ``tagserver serve`` process is started on a free loopback port with
the shipped container, ``TAGSERVER_DRY_RUN=1`` (outbound Meta requests are recorded, not sent)
and a fresh key file; the rows are posted in batches of 500 to ``/api/events`` as the CLI does,
so each row is also authenticated, checked by the server, claimed for idempotency, run through
the container (Meta's normalisation and SHA-256 hashing) and queued for delivery.

Peak memory is the importer's own maximum resident set size (``resource.getrusage``,
``ru_maxrss``), and the server's after it stopped (``RUSAGE_CHILDREN``).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagserver.server_events.importer import BatchSender, run_import  # noqa: E402
from tagserver.server_events.keys import create_key  # noqa: E402

CITIES = [("London", "SW1A 1AA", "GB", "+44 7700 9{:05d}"),
          ("Berlin", "10115", "DE", "+49 30 12{:05d}"),
          ("Paris", "75001", "FR", "+33 6 12 3{:05d}"),
          ("Austin", "78701", "US", "+1 512 55{:05d}")]


def write_csv(path: Path, rows: int, *, seed: int = 7) -> None:
    """Write ``rows`` data rows to ``path`` line by line."""
    rng = random.Random(seed)
    now = time.time()
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        out.write("E-Mail;Phone;First Name;Last Name;City;Zip;Country;Amount;Currency;"
                  "Order #;Date;Notes\r\n")
        for i in range(rows):
            if i and i % 1000 == 0:
                out.write("\r\n")
            city, zip_code, country, phone = CITIES[i % len(CITIES)]
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                 time.gmtime(now - rng.randint(3600, 30 * 86400)))
            email = f"customer{i}@example.com"
            if i % 100 == 50:
                when = "last tuesday"
            if i % 100 == 75:
                email = phone = ""
            amount = f"{rng.randint(1, 99999) / 100:.2f}".replace(".", ",")
            out.write(f'{email};{phone.format(i % 100000) if phone else ""};Jane;"Doe; Jr";{city};{zip_code};'
                      f'{country};"{amount}";EUR;B-{i};{when};"note, {i}"\r\n')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A ``tagserver serve`` process with a dry-run destination; its URL and an API key."""
    keys = folder / "keys.sqlite3"
    _, key = create_key(keys, "bench", all_tags=True)
    port = free_port()
    env = {**os.environ, "TAGSERVER_KEYS": str(keys), "TAGSERVER_DRY_RUN": "1",
           "META_PIXEL_ID": "1234567890", "META_ACCESS_TOKEN": "EAAB-bench",
           "TAGSERVER_SECRET_KEY": "bench-secret-key-0123456789", "TAGSERVER_LOG_LEVEL": "error",
           "TAGSERVER_OUTBOX": str(folder / "outbox.sqlite3")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tagserver", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthy").status_code == 200:
                return process, url, key
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dry-run", action="store_true", help="read and check only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "export.csv"
        write_csv(path, args.rows)
        mapping = folder / "map.json"
        mapping.write_text('{"value_locale": "de"}')
        size = path.stat().st_size
        process = None
        send = None
        if not args.dry_run:
            process, url, key = start_server(folder)
            send = BatchSender(url, key).send
        err = io.StringIO()
        devnull = open(os.devnull, "w")  # the events --dry-run prints
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            code = run_import(path, action_source="physical_store", mapping_path=mapping,
                              dry_run=args.dry_run, send=send, out=devnull, err=err,
                              progress=False)
        finally:
            elapsed = time.perf_counter() - started
            devnull.close()
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        server_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        summary = err.getvalue().strip().splitlines()[-1]
        print(f"file: {args.rows:,} rows, {size / 1e6:.1f} MB; exit {code}; {summary}")
        print(f"mode: {'dry run (read + check)' if args.dry_run else 'through a real server'}")
        print(f"time: {elapsed:.1f} s  ->  {args.rows / elapsed:,.0f} rows/s")
        print(f"importer peak RSS: {peak / 1024:.1f} MiB (before the import: "
              f"{rss_before / 1024:.1f} MiB)")
        if process is not None:
            print(f"server peak RSS: {server_peak / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
