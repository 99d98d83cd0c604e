"""The ``tagserver`` command: ``serve``, ``validate``, ``check``, ``demo``, ``snippet``, ``keys``,
``import``, ``sign``, ``outbox``."""

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
    serve.add_argument("--ssl-keyfile", type=Path, help="serve https with this PEM key")
    serve.add_argument("--ssl-certfile", type=Path, help="serve https with this PEM certificate")

    validate = sub.add_parser("validate", help="check a container folder; exit 1 on any problem")
    validate.add_argument("directory", nargs="?", type=Path, default=None)

    check = sub.add_parser(
        "check", help="run sample events through a container offline; exit 1 on a failed expect"
    )
    check.add_argument("directory", nargs="?", type=Path, default=None)
    check.add_argument("--events", type=Path, required=True, help="samples, one JSON a line")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--now", type=float, default=None, help="unix seconds to evaluate at")

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

    snippet = sub.add_parser("snippet", help="print the install snippet for the site domains")
    snippet.add_argument(
        "--url",
        help="where browsers reach tagserver, e.g. https://t.shop.com "
        "(default: a path mount on each of TAGSERVER_SITE_DOMAINS)",
    )
    snippet.add_argument("--pixel-src", help="URL of the Meta Pixel library (default: Meta's)")
    snippet.add_argument(
        "--no-pageview", action="store_true", help="no automatic PageView on load"
    )
    _add_server_event_commands(sub)
    sign = sub.add_parser(
        "sign", help="sign a purchase token (keys: TAGSERVER_PURCHASE_TOKEN_KEYS, first signs)"
    )
    sign.add_argument("--order-id", required=True)
    sign.add_argument("--value", required=True, help="the order value, e.g. 59.90")
    sign.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    sign.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")
    return parser


def _add_server_event_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``keys create|list|revoke`` and ``import`` (server-to-server events)."""
    keys = sub.add_parser("keys", help="API keys of POST /api/events (file: TAGSERVER_KEYS)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once")
    create.add_argument("name")
    create.add_argument("--tags", default="", help="comma list of tag names it may feed")
    create.add_argument("--pixels", default="", help="comma list of Meta pixel ids it may feed")
    create.add_argument("--all-tags", action="store_true", help="it may feed every tag")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("name")

    imp = sub.add_parser("import", help="send offline conversions from a CSV file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--action-source", required=True,
                     choices=("physical_store", "system_generated", "phone_call", "email",
                              "chat", "other"))
    imp.add_argument("--map", type=Path, dest="mapping", help="column mapping JSON file")
    imp.add_argument("--event-name", default="Purchase", help="when no column names it")
    imp.add_argument("--country", help="ISO country of phone numbers without a country code "
                     "(default: TAGSERVER_DEFAULT_COUNTRY)")
    imp.add_argument("--url", default="http://127.0.0.1:8080", help="the running tagserver")
    imp.add_argument("--key", help="API key (default: TAGSERVER_API_KEY; keeps it out of ps)")
    imp.add_argument("--batch-size", type=int, default=500, choices=range(1, 1001),
                     metavar="1..1000")
    imp.add_argument("--encoding", default="utf-8-sig")
    imp.add_argument("--dry-run", action="store_true",
                     help="print the events that would be sent (JSON lines); needs no server")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 invalid configuration, 2 usage, 130 when
    interrupted with Ctrl-C)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tagserver check ... | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "validate":
        return _validate(args.directory)
    if args.command == "check":
        return _check(args)
    if args.command == "demo":
        from tagserver.demo import run_demo

        return run_demo(host=args.host, port=args.port, once=args.once)
    if args.command == "outbox":
        from tagserver.outbox_cli import run_outbox_command

        return run_outbox_command(args)
    if args.command == "snippet":
        return _snippet(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "import":
        return _import(args)
    if args.command == "sign":
        return _sign(args)
    return 2


def _keys(args: argparse.Namespace) -> int:
    from tagserver.server_events.keys import KeyStoreError, create_key, list_keys, revoke_key
    from tagserver.settings import load_settings

    try:
        path = load_settings(os.environ).keys_path
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    try:
        if args.keys_command == "create":
            key, plain = create_key(
                path, args.name, tags=tuple(t.strip() for t in args.tags.split(",") if t.strip()),
                pixels=tuple(p.strip() for p in args.pixels.split(",") if p.strip()),
                all_tags=args.all_tags,
            )
            print(plain)
            print(f"key {key.name!r} created in {path} (scope: {key.scope_text}); it is shown "
                  "only now: store it in the backend's secrets", file=sys.stderr)
        elif args.keys_command == "list":
            for key in list_keys(path):
                state = "revoked" if key.revoked_at is not None else "active"
                print(f"{key.name}\t{state}\t{key.scope_text}\tcreated {_iso(key.created_at)}")
        else:
            key = revoke_key(path, args.name)
            print(f"key {key.name!r} revoked at {_iso(key.revoked_at or 0)}", file=sys.stderr)
    except KeyStoreError as exc:
        print(f"tagserver keys: {exc}", file=sys.stderr)
        return 1
    return 0


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _import(args: argparse.Namespace) -> int:
    from tagserver.server_events.importer import BatchSender, run_import

    country = args.country or os.environ.get("TAGSERVER_DEFAULT_COUNTRY") or None
    send = None
    if not args.dry_run:
        key = args.key or os.environ.get("TAGSERVER_API_KEY")
        if not key:
            print("tagserver import: an API key is needed: --key or TAGSERVER_API_KEY "
                  "(tagserver keys create NAME), or --dry-run", file=sys.stderr)
            return 2
        send = BatchSender(args.url, key).send
    return run_import(
        args.file, action_source=args.action_source, event_name=args.event_name,
        mapping_path=args.mapping, default_country=country, dry_run=args.dry_run, send=send,
        batch_size=args.batch_size, encoding=args.encoding,
    )


def _sign(args: argparse.Namespace) -> int:
    """Print a signed purchase token (docs/SECURITY.md); exit 1 without keys or a bad value."""
    from tagserver.purchase_token import sign_purchase
    from tagserver.settings import load_settings

    try:
        keys = [k.reveal() for k in load_settings(os.environ).purchase_token_keys]
        token = sign_purchase(keys, order_id=args.order_id, value=args.value,
                              currency=args.currency, expires_in=args.expires_in)
    except (ConfigError, ValueError) as exc:
        print(f"tagserver sign: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


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
    """Serve with uvicorn until a signal stops it. A worker that fails to start (its lifespan
    raised, for one) ends the process with exit status 3, uvicorn's ``STARTUP_FAILURE``, with one
    worker or several.

    Raises :class:`SystemExit` (3) on a failed start. ``uvicorn.run`` does so for one worker;
    with ``--workers N`` its supervisor stops when a worker fails to start but returns normally,
    so the supervisor is run here and its workers' exit codes are read."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    options: dict[str, Any] = dict(
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(drain_timeout_s) + 5,
        ssl_keyfile=str(args.ssl_keyfile) if args.ssl_keyfile else None,
        ssl_certfile=str(args.ssl_certfile) if args.ssl_certfile else None,
    )
    if args.workers <= 1:
        uvicorn.run("tagserver.app:app_from_environment", **options)
        return
    config = uvicorn.Config("tagserver.app:app_from_environment", **options)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    try:
        supervisor.run()
    except KeyboardInterrupt:
        pass
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)


def _snippet(args: argparse.Namespace) -> int:
    from tagserver.settings import load_settings
    from tagserver.snippet import render_snippets

    try:
        settings = load_settings(os.environ)
        text = render_snippets(
            site_domains=settings.site_domains,
            allowed_origins=settings.allowed_origins,
            script_path=settings.script_path,
            base_url=args.url,
            pixel_src=args.pixel_src,
            pageview=not args.no_pageview,
        )
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    except ValueError as exc:
        print(f"tagserver snippet: {exc}", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


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


def _check(args: argparse.Namespace) -> int:
    from tagserver.container.check import run_check
    from tagserver.settings import load_settings

    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    return run_check(
        args.directory or settings.tags_dir,
        args.events,
        environ=os.environ,
        settings=settings,
        out=sys.stdout,
        err=sys.stderr,
        now=args.now,
        fmt=args.format,
    )
