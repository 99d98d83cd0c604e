"""The ``tagserver`` command: ``serve``, ``validate``, ``demo``, ``outbox``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tagserver import __version__
from tagserver.exceptions import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagserver", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tagserver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the production server")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--tags", type=Path, help="container folder (default: TAGSERVER_TAGS or ./tags)"
    )
    serve.add_argument("--workers", type=int, default=1)

    validate = sub.add_parser("validate", help="check a container folder; exit 1 on any problem")
    validate.add_argument("directory", nargs="?", type=Path, default=None)

    demo = sub.add_parser("demo", help="serve the example container with a recording sandbox")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument(
        "--once",
        action="store_true",
        help="exit after showing the sample hit (for scripts and tests)",
    )
    from tagserver.outbox_cli import add_outbox_parser

    add_outbox_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 invalid configuration, 2 usage)."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "validate":
        return _validate(args.directory)
    if args.command == "demo":
        from tagserver.demo import run_demo

        return run_demo(host=args.host, port=args.port, once=args.once)
    if args.command == "outbox":
        from tagserver.outbox_cli import run_outbox_command

        return run_outbox_command(args)
    return 2


def _print_config_error(exc: ConfigError) -> None:
    print(f"tagserver: {len(exc.issues)} configuration problem(s):", file=sys.stderr)
    for issue in exc.issues:
        print(f"  {issue}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tagserver.container.loader import load_container
    from tagserver.logs import configure_logging
    from tagserver.settings import load_settings

    if args.tags is not None:
        os.environ["TAGSERVER_TAGS"] = str(args.tags)
    try:
        settings = load_settings(os.environ)
        load_container(settings.tags_dir, environ=os.environ)  # fail fast, before binding
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    configure_logging(settings.log_level)
    try:
        cleanup = _process_metrics(settings.metrics_host, settings.metrics_port, args.workers)
    except OSError as exc:
        print(f"tagserver: TAGSERVER_METRICS_PORT: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        _run_uvicorn(uvicorn, args, settings.drain_timeout_s)
    finally:
        cleanup()
    return 0


def _process_metrics(host: str, port: int | None, workers: int) -> Callable[[], None]:
    """Metrics shared by every worker: prometheus-client's multiprocess mode (its folder is set
    before prometheus-client is imported), and the metrics port served from this process."""
    if workers <= 1 and port is None:
        return lambda: None
    created = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        created = tempfile.mkdtemp(prefix="tagserver-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    server: Any = None
    if port is not None:
        from tagserver.metrics import serve_metrics_port

        server = serve_metrics_port(host, port)

    def cleanup() -> None:
        if server is not None:
            server.shutdown()
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)

    return cleanup


def _run_uvicorn(uvicorn: Any, args: argparse.Namespace, drain_timeout_s: float) -> None:
    uvicorn.run(
        "tagserver.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(drain_timeout_s) + 5,
    )


def _validate(directory: Path | None) -> int:
    from tagserver.container.loader import load_container
    from tagserver.settings import load_settings

    try:
        settings = load_settings(os.environ)
        folder = directory or settings.tags_dir
        container = load_container(folder, environ=os.environ)
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    print(f"{folder}: {len(container.tags)} tag(s) valid, version {container.version}")
    return 0
