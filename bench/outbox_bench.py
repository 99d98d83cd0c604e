"""What the durable outbox costs per hit at saturation, compared with the in-memory outbox.

For each backend (``memory``, ``sqlite``, and ``redis`` when ``redis-server`` is installed) this
starts one ``tagserver serve`` process (one worker, dry run: delivery runs through the outbox and
the sender, the HTTP request to Meta is recorded instead of sent), saturates ``POST /e`` with
unique hits for ``--seconds``, and reports

- hits/s: answered 2xx per second of the load;
- CPU ms/hit: CPU time of the server process (plus redis-server's for Redis) during the load,
  divided by the hits answered; this is "the cost of a hit";
- the outbox's extra cost: CPU ms/hit relative to ``memory`` (the target: at most +30 %).

The load comes from ``wrk`` (Debian package) when installed, else from a Python asyncio client
in a separate process (slower: it competes with the server for the CPU). Loopback only, bounded by
``--seconds``. Run from the project root:

    .venv/bin/python bench/outbox_bench.py --seconds 15

``--check`` exits 1 when a durable backend costs more than ``--max-overhead`` (default 0.30).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from redis_proc import start_redis  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HOST = "t.shop.example"
HEADERS = {"Origin": "https://www.shop.example", "Host": HOST,
           "User-Agent": "Mozilla/5.0 (bench) AppleWebKit/537.36 Chrome/130 Safari/537.36",
           "Content-Type": "application/json"}  # fmt: skip
WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Origin"] = "https://www.shop.example"
wrk.headers["Host"] = "t.shop.example"
wrk.headers["User-Agent"] = "Mozilla/5.0 (bench) AppleWebKit/537.36 Chrome/130 Safari/537.36"
local counter = 0
local run = math.random(1, 1000000000)
request = function()
  counter = counter + 1
  local body = string.format('{"event_name":"ViewContent","event_id":"b-%d-%d",' ..
    '"event_source_url":"https://www.shop.example/p/1",' ..
    '"custom_data":{"content_ids":["sku-1"],"value":3.5,"currency":"EUR"}}', run, counter)
  return wrk.format(nil, "/e", nil, body)
end
"""
PY_LOAD = r"""
import asyncio, sys, time, httpx, json
url, seconds, conns = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
headers = json.loads(sys.argv[4])
ok = total = 0
async def worker(n):
    global ok, total
    i = 0
    async with httpx.AsyncClient(timeout=10) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            i += 1
            body = {"event_name": "ViewContent", "event_id": f"p-{n}-{i}",
                    "event_source_url": "https://www.shop.example/p/1",
                    "custom_data": {"content_ids": ["sku-1"], "value": 3.5, "currency": "EUR"}}
            r = await client.post(url, json=body, headers=headers)
            ok += 200 <= r.status_code < 300
            total += 1
async def main():
    await asyncio.gather(*(worker(n) for n in range(conns)))
asyncio.run(main())
print(ok, total)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc (Linux), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class Result:
    backend: str
    hits: int
    seconds: float
    cpu_s: float  # tagserver + redis-server
    server_cpu_s: float  # tagserver alone

    @property
    def rate(self) -> float:
        return self.hits / self.seconds

    @property
    def cpu_ms_per_hit(self) -> float:
        return 1000 * self.cpu_s / max(self.hits, 1)

    @property
    def server_cpu_ms_per_hit(self) -> float:
        return 1000 * self.server_cpu_s / max(self.hits, 1)


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tagserver exited with {process.returncode}")
        try:
            if httpx.get(url + "/healthy", headers={"Host": HOST}, timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("tagserver did not become healthy")


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` run on one CPU with ``taskset`` (when asked for and installed)."""
    if cpu is None or not shutil.which("taskset"):
        return command
    return ["taskset", "-c", str(cpu), *command]


def load(url: str, seconds: float, connections: int, tool: str, cpu: int | None = None) -> int:
    """Saturate ``url``/e for ``seconds``; the number of 2xx answers."""
    if tool == "wrk":
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(WRK_SCRIPT)
        try:
            out = subprocess.run(
                pinned(["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                        "-s", script.name, url], cpu),
                capture_output=True, text=True, check=True, timeout=seconds + 30,
            ).stdout  # fmt: skip
        finally:
            os.unlink(script.name)
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                           out)  # fmt: skip
        failed = int(bad.group(1)) if bad else 0
        if errors:
            failed += sum(int(g) for g in errors.groups()[:3])
        if failed > total // 100:
            raise RuntimeError(f"{failed} of {total} hits were not answered 2xx: the figures "
                               "would mean nothing (is a limit on?)")
        return total - failed
    out = subprocess.run(
        pinned([sys.executable, "-c", PY_LOAD, url + "/e", str(seconds), str(connections),
                json.dumps(HEADERS)], cpu),
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    ok, total = map(int, out.strip().splitlines()[-1].split())
    if total - ok > total // 100:
        raise RuntimeError(f"{total - ok} of {total} hits were not answered 2xx: the figures "
                           "would mean nothing (is a limit on?)")
    return ok


def run_backend(backend: str, *, seconds: float, connections: int, tool: str,
                workdir: Path, pin: bool = False) -> Result:
    server_cpu, load_cpu = (0, 1) if pin else (None, None)
    redis_proc = None
    if backend == "memory":
        spec = "memory"
    elif backend == "sqlite":
        spec = str(workdir / f"bench-{time.time_ns()}.sqlite3")
    else:
        redis_proc, spec = start_redis(workdir, free_port(), cpu=load_cpu)
    port = free_port()
    env = {**os.environ, "TAGSERVER_OUTBOX": spec, "TAGSERVER_DRY_RUN": "1",
           "TAGSERVER_LOG_LEVEL": "warning", "TAGSERVER_SITE_DOMAINS": "www.shop.example",
           "TAGSERVER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
           # every hit comes from 127.0.0.1: the per-IP limit would answer most of them 429
           "TAGSERVER_RATE_LIMIT_IP": "0", "TAGSERVER_RATE_LIMIT_VISITOR": "0",
           "TAGSERVER_BLOCK_BOTS": "0", "TAGSERVER_RELOAD_INTERVAL": "0",
           "META_PIXEL_ID": "1234567890", "META_ACCESS_TOKEN": "EAAB-BENCH-TOKEN"}  # fmt: skip
    server = subprocess.Popen(
        pinned([sys.executable, "-m", "tagserver", "serve", "--host", "127.0.0.1",
                "--port", str(port), "--tags", str(REPO / "tags")], server_cpu),
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        load(url, min(2.0, seconds), connections, tool, load_cpu)  # warm-up
        pids = [server.pid] + ([redis_proc.pid] if redis_proc else [])
        before = [cpu_seconds(p) for p in pids]
        started = time.monotonic()
        hits = load(url, seconds, connections, tool, load_cpu)
        elapsed = time.monotonic() - started
        used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
        return Result(backend, hits, elapsed, sum(used), used[0])
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


def median_result(backend: str, results: list[Result]) -> Result:
    """The run with the median CPU cost per hit (its own hits and seconds)."""
    ordered = sorted(results, key=lambda r: r.cpu_ms_per_hit)
    return ordered[len(ordered) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="backends run in turn this many times; medians are reported")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backends", default="memory,sqlite,redis")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--max-overhead", type=float, default=0.30)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 0, load (and redis-server) on CPU 1 (taskset)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    backends = [b for b in args.backends.split(",") if b]
    if "redis" in backends and not shutil.which("redis-server"):
        print("redis-server not installed: skipping the redis backend", file=sys.stderr)
        backends.remove("redis")
    load_before = os.getloadavg()[0]
    runs: dict[str, list[Result]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory(prefix="tagserver-bench-") as tmp:
        for _ in range(args.rounds):
            for backend in backends:  # in turn, so a slow minute of the machine hits all
                runs[backend].append(run_backend(backend, seconds=args.seconds,
                                                 connections=args.connections, tool=tool,
                                                 workdir=Path(tmp), pin=args.pin))  # fmt: skip
    results = [median_result(b, runs[b]) for b in backends]
    load_after = os.getloadavg()[0]
    base = next((r for r in results if r.backend == "memory"), None)
    rows = []
    failed = False
    for r in results:
        overhead = r.cpu_ms_per_hit / base.cpu_ms_per_hit - 1 if base else 0.0
        slower = 1 - r.rate / base.rate if base else 0.0
        over = r.backend != "memory" and overhead > args.max_overhead
        failed |= over
        rows.append({"backend": r.backend, "hits": r.hits, "hits_per_s": round(r.rate, 1),
                     "cpu_ms_per_hit": round(r.cpu_ms_per_hit, 3),
                     "tagserver_cpu_ms_per_hit": round(r.server_cpu_ms_per_hit, 3),
                     "cpu_overhead": round(overhead, 3), "throughput_loss": round(slower, 3),
                     "over_target": over})  # fmt: skip
    if args.json:
        print(json.dumps({"tool": tool, "seconds": args.seconds, "rounds": args.rounds,
                          "loadavg_before": load_before, "loadavg_after": load_after,
                          "connections": args.connections, "results": rows}))  # fmt: skip
    else:
        print(f"load: {tool}, {args.connections} connections, {args.seconds:g} s per run, "
              f"median of {args.rounds} run(s) per backend"
              + (", server pinned to CPU 0, load to CPU 1" if args.pin else ""))
        print(f"1-min load average before/after: {load_before:.2f} / {load_after:.2f} "
              "(anything else running on the machine skews the figures)")  # fmt: skip
        print(f"{'backend':8} {'hits':>8} {'hits/s':>9} {'CPU ms/hit':>11} {'vs memory':>10}"
              f" {'throughput':>11} {'tagserver alone':>16}")  # fmt: skip
        for row in rows:
            print(f"{row['backend']:8} {row['hits']:>8} {row['hits_per_s']:>9} "
                  f"{row['cpu_ms_per_hit']:>11} {row['cpu_overhead']:>+10.1%} "
                  f"{-row['throughput_loss']:>+11.1%} "
                  f"{row['tagserver_cpu_ms_per_hit']:>16}")  # fmt: skip
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
