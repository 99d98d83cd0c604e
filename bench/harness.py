"""The performance harness (issue "Performance"): tagserver against the ceiling and the
hand-written alternative, in one run. From the repository root::

    .venv/bin/python bench/harness.py                       # 3 alternating rounds of 10 s
    .venv/bin/python bench/harness.py --rounds 1 --duration 2 --json out.json   # the CI smoke run
    .venv/bin/python bench/harness.py --long                # plus peak RSS through 1,000,000 hits
    .venv/bin/python bench/harness.py --floor               # plus the floor (targets.py floor)

Every server is a real process on 127.0.0.1 with one uvicorn worker; ``wrk`` loads it with
``hits.lua`` (the Python generator ``pyload.py`` stands in when wrk is missing). Per round, in
this order: the ceiling (``targets.py ceiling``), the hand-written alternative (``targets.py
alternative``, one awaited CAPI POST per hit) and tagserver (``python -m tagserver serve
--workers 1`` with the shipped ``tags/meta.json``, ``TAGSERVER_OUTBOX`` in a temporary folder),
the last two against one fake Graph API (``targets.py graph``) answering after 80 ms.

Reported per target: requests/s, p50/p99 latency in ms (medians over the rounds), ratio to the
ceiling and to the alternative. For tagserver also: p99 when paced at half its own saturated
rate, CAPI requests per 1,000 events, events delivered (received by the fake after a SIGTERM
drain) vs accepted (200 answers), peak RSS (``VmHWM``), and cold start (process start to the
first 200 on ``/healthy``). ``--long`` adds a run of 1,000,000 hits sampling ``VmRSS``.
``--floor`` adds ``targets.py floor`` after the ceiling: the per-hit work no implementation of
tagserver's contract can skip, written flat (a measuring stick for what tagserver's checks,
container and durable outbox cost, not a target).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from pyload import run_load  # noqa: E402

HOST = "127.0.0.1"
TARGETS = ("ceiling", "floor", "alternative", "tagserver")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ok(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> float:
    """Poll ``url`` until it answers 200; returns the seconds since ``proc`` started polling."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s} s")


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (``VmHWM``, ``VmRSS``) in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) * 1024 if match else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its threads so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(cmd: list[str], args: argparse.Namespace, cpu: str) -> list[str]:
    """``cmd`` under ``taskset -c cpu`` with ``--pin`` (and taskset present), else unchanged."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", cpu, *cmd] if args.pin and taskset else cmd


def load(port: int, args: argparse.Namespace, duration_s: float,
         delay_ms: float | None = None, pid: int | None = None) -> dict[str, Any]:
    """One load run against ``port``: the counts and latencies of ``hits.lua``, plus ``rps`` and,
    with ``pid`` (the server's process), ``cpu_us_per_request``: its CPU time (all threads, user
    + system) during the run divided by the requests answered."""
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    wrk = shutil.which("wrk") if not args.python_load else None
    if wrk:
        env = dict(os.environ)
        if delay_ms is not None:
            env["BENCH_DELAY_MS"] = f"{delay_ms:.3f}"
        cmd = pinned([wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(duration_s))}s",
               "--latency", "--timeout", "10s", "-s", str(BENCH / "hits.lua"),
               f"http://{HOST}:{port}/e"], args, "1")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
        out = done.stdout
        match = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
        if not match:
            raise RuntimeError(f"wrk printed no BENCH_RESULT:\n{out}")
        result: dict[str, Any] = json.loads(match.group(1))
        result["tool"] = "wrk"
    else:
        result = dict(run_load(HOST, port, connections=args.connections, duration_s=duration_s,
                               delay_ms=delay_ms or 0.0))
        result["tool"] = "python"
    if not result["requests"]:
        raise RuntimeError(f"port {port}: no request was answered in {duration_s:g} s "
                           "(see the server log)")
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    answered = result["ok"] + result["other"]
    if result["other"] > answered // 100:
        raise RuntimeError(f"port {port}: {result['other']} of {answered} answers were not 200: "
                           "the figures would mean nothing (a limit on? see the server log)")
    if pid is not None and result["requests"]:
        result["cpu_us_per_request"] = (cpu_seconds(pid) - cpu_before) * 1e6 / result["requests"]
    return result


def graph_stats(port: int) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"http://{HOST}:{port}/stats", timeout=5).json()
    return stats


def tagserver_env(graph_port: int, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TAGSERVER_SITE_DOMAINS": "www.shop.example",
        "TAGSERVER_META_GRAPH_URL": f"http://{HOST}:{graph_port}",
        "TAGSERVER_OUTBOX": str(tmp / "outbox.sqlite3"),
        "TAGSERVER_KEYS": str(tmp / "keys.sqlite3"),
        "TAGSERVER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "TAGSERVER_RATE_LIMIT_IP": "0",
        "TAGSERVER_RATE_LIMIT_VISITOR": "0",
        "TAGSERVER_BLOCK_BOTS": "0",
        "TAGSERVER_RELOAD_INTERVAL": "0",
        "META_PIXEL_ID": "1234567890",
        "META_ACCESS_TOKEN": "EAAB-BENCH-TOKEN-123",
    }


def tagserver_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "tagserver", "serve", "--host", HOST, "--port", str(port),
            "--workers", "1", "--tags", str(REPO / "tags")]


def run_tagserver(args: argparse.Namespace, graph_port: int, tmp: Path, log: Path,
                  paced: bool) -> dict[str, Any]:
    """Cold start, warm-up, saturation (and a paced run at half that rate), then a SIGTERM drain."""
    port = free_port()
    before = graph_stats(graph_port)
    accepted = 0
    with process(pinned(tagserver_cmd(port), args, "0"), tagserver_env(graph_port, tmp),
                 log) as proc:
        cold = wait_ok(f"http://{HOST}:{port}/healthy", proc)
        warm = load(port, args, args.warmup)
        sat = load(port, args, args.duration, pid=proc.pid)
        accepted += warm["ok"] + sat["ok"]
        result: dict[str, Any] = {**sat, "cold_start_s": cold}
        if paced:
            rate = sat["rps"] / 2
            period_ms = args.connections / rate * 1000  # per connection, request to request
            # closed loop: a connection's period is its think time plus the answer's latency, so
            # a calibration run measures that latency and the think time makes up the rest
            calib = load(port, args, 3, delay_ms=period_ms)
            accepted += calib["ok"]
            delay_ms = max(0.0, period_ms - calib["mean_us"] / 1000)
            half = load(port, args, args.duration, delay_ms=delay_ms)
            accepted += half["ok"]
            result["half"] = {"target_rps": rate, "rps": half["rps"], "p50_us": half["p50_us"],
                              "p99_us": half["p99_us"], "delay_ms": delay_ms}
        # exact accounting: wrk stops with requests in flight that the server accepted but wrk
        # never counted; pyload answers every request it sends, with event ids "acct-..."
        acct = run_load(HOST, port, connections=args.connections,
                        duration_s=min(args.duration, 5.0), prefix="acct")
        result["acct"] = {"accepted": acct["ok"], "other": acct["other"], "rps": acct["requests"]
                          / (acct["duration_us"] / 1e6)}
        result["peak_rss_bytes"] = proc_status(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        drain_start = time.monotonic()
        proc.wait(60)
        result["drain_s"] = time.monotonic() - drain_start
    after = graph_stats(graph_port)
    events = after["events"] - before["events"]
    requests = after["requests"] - before["requests"]
    acct_delivered = after["by_prefix"].get("acct", 0) - before["by_prefix"].get("acct", 0)
    result["acct"]["delivered"] = acct_delivered
    # the same set on both sides: every event delivered, every 200 counted (wrk's runs + the
    # accounting run); the difference is what wrk never saw answered when its runs ended
    result.update(wrk_counted=accepted + acct["ok"], delivered=events, capi_requests=requests,
                  capi_per_1000=requests / events * 1000 if events else None)
    return result


def run_other(target: str, args: argparse.Namespace, graph_port: int, log: Path) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, str(BENCH / "targets.py"), target, "--port", str(port),
           "--graph-url", f"http://{HOST}:{graph_port}"]
    with process(pinned(cmd, args, "0"), dict(os.environ), log) as proc:
        # /e answers GET with 405: wait on the port with a real hit instead
        wait_port(port, proc)
        load(port, args, args.warmup)
        return load(port, args, args.duration, pid=proc.pid)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} not open within {timeout_s} s")


def run_long(args: argparse.Namespace, graph_port: int, tmp: Path, log: Path) -> dict[str, Any]:
    """``--long``: 1,000,000 hits on one tagserver process in 10-second chunks, sampling RSS."""
    port = free_port()
    before = graph_stats(graph_port)
    samples: list[tuple[int, int]] = []
    hits = 0
    with process(pinned(tagserver_cmd(port), args, "0"), tagserver_env(graph_port, tmp),
                 log) as proc:
        wait_ok(f"http://{HOST}:{port}/healthy", proc)
        while hits < args.long_hits:
            chunk = load(port, args, 10)
            hits += chunk["requests"]
            samples.append((hits, proc_status(proc.pid, "VmRSS")))
            print(f"  long: {hits:,} hits, RSS {samples[-1][1] / 2**20:.1f} MB", flush=True)
        acct = run_load(HOST, port, connections=args.connections, duration_s=5.0, prefix="acct")
        accepted = acct["ok"]
        peak = proc_status(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    after = graph_stats(graph_port)
    delivered = after["by_prefix"].get("acct", 0) - before["by_prefix"].get("acct", 0)
    return {"hits": hits, "accepted": accepted, "delivered": delivered,
            "peak_rss_bytes": peak, "rss_samples": samples}


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    measured = [target for target in TARGETS if target in rounds[0]]
    for target in measured:
        rows = [r[target] for r in rounds]
        summary[target] = {"rps": median(rows, "rps"), "p50_ms": median(rows, "p50_us") / 1000,
                           "p99_ms": median(rows, "p99_us") / 1000,
                           "cpu_us": median(rows, "cpu_us_per_request")}
    for target in measured:
        s = summary[target]
        s["vs_ceiling"] = s["rps"] / summary["ceiling"]["rps"]
        s["vs_alternative"] = s["rps"] / summary["alternative"]["rps"]
    ts = [r["tagserver"] for r in rounds]
    halves = [t["half"] for t in ts if "half" in t]
    summary["tagserver"].update(
        half_rate_p99_ms=median(halves, "p99_us") / 1000 if halves else None,
        half_rate_rps=median(halves, "rps") if halves else None,
        half_rate_target_rps=median(halves, "target_rps") if halves else None,
        capi_per_1000=max((t["capi_per_1000"] or 0.0) for t in ts),
        accepted=sum(t["acct"]["accepted"] for t in ts),
        delivered=sum(t["acct"]["delivered"] for t in ts),
        wrk_counted=sum(t["wrk_counted"] for t in ts), all_delivered=sum(t["delivered"] for t in ts),
        peak_rss_mb=max(t["peak_rss_bytes"] for t in ts) / 2**20,
        cold_start_s=median(ts, "cold_start_s"))
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = ["| target | requests/s | p50 ms | p99 ms | ÷ ceiling | ÷ alternative "
             "| server CPU µs/request |",
             "|---|---|---|---|---|---|---|"]
    for target in (target for target in TARGETS if target in summary):
        s = summary[target]
        lines.append(f"| {target} | {s['rps']:,.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
                     f"{s['vs_ceiling']:.2f} | {s['vs_alternative']:.1f} | {s['cpu_us']:.0f} |")
    t = summary["tagserver"]
    half = ("not measured" if t["half_rate_p99_ms"] is None else
            f"{t['half_rate_p99_ms']:.1f} ms (at {t['half_rate_rps']:,.0f} requests/s; "
            f"half of saturation: {t['half_rate_target_rps']:,.0f})")
    capi = t["capi_per_1000"]
    lines += ["", "| tagserver | value |", "|---|---|",
              f"| p99 at half its saturated rate | {half} |",
              f"| CAPI requests per 1,000 events | {capi:.2f} |",
              f"| events delivered / accepted (exact accounting run) | {t['delivered']:,} / "
              f"{t['accepted']:,} |",
              f"| all events delivered / all 200s counted (wrk misses the in-flight ones at a run's "
              f"end) | "
              f"{t['all_delivered']:,} / {t['wrk_counted']:,} |",
              f"| peak RSS (VmHWM) in these runs | {t['peak_rss_mb']:.1f} MB |",
              f"| cold start (process start → first 200) | {t['cold_start_s']:.2f} s |"]
    if "long" in summary:
        lg = summary["long"]
        lines.append(f"| peak RSS through {lg['hits']:,} hits | {lg['peak_rss_bytes'] / 2**20:.1f}"
                     f" MB (delivered {lg['delivered']:,} / accepted {lg['accepted']:,}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--latency", type=float, default=0.08, help="fake Graph API, seconds")
    parser.add_argument("--no-paced", action="store_true", help="skip the half-rate run")
    parser.add_argument("--long", action="store_true", help="add the 1,000,000-hit RSS run")
    parser.add_argument("--floor", action="store_true",
                        help="add targets.py floor (the contract's bare per-hit work)")
    parser.add_argument("--long-hits", type=int, default=1_000_000)
    parser.add_argument("--python-load", action="store_true", help="use pyload.py, not wrk")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--pin", action="store_true",
                        help="servers on CPU 0, wrk on CPU 1 (taskset): one core per server")
    args = parser.parse_args(argv)

    tool = "wrk" if shutil.which("wrk") and not args.python_load else "python (pyload.py)"
    print(f"load: {tool}, {args.connections} connections, {args.duration:g} s per run"
          f"{', pinned (servers CPU 0, wrk CPU 1)' if args.pin else ''}; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tagserver-bench-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "servers.log"
        graph_port = free_port()
        graph_cmd = [sys.executable, str(BENCH / "targets.py"), "graph", "--port",
                     str(graph_port), "--latency", str(args.latency)]
        rounds: list[dict[str, dict[str, Any]]] = []
        try:
            with process(pinned(graph_cmd, args, "1"), dict(os.environ), log) as graph:
                wait_ok(f"http://{HOST}:{graph_port}/stats", graph)
                for n in range(args.rounds):
                    row: dict[str, dict[str, Any]] = {}
                    for target in TARGETS:
                        if target == "floor" and not args.floor:
                            continue
                        if target == "tagserver":
                            row[target] = run_tagserver(args, graph_port, tmp, log,
                                                        paced=not args.no_paced)
                        else:
                            row[target] = run_other(target, args, graph_port, log)
                        print(f"round {n + 1} {target}: {row[target]['rps']:,.0f} requests/s, "
                              f"p99 {row[target]['p99_us'] / 1000:.1f} ms", flush=True)
                    rounds.append(row)
                summary = summarise(rounds)
                if args.long:
                    summary["long"] = run_long(args, graph_port, tmp, log)
        except Exception:
            print(log.read_text()[-4000:] if log.exists() else "", file=sys.stderr)
            raise
    summary["load_average_after"] = os.getloadavg()
    summary["load_tool"] = tool
    print()
    print(table(summary))
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
