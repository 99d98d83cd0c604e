"""Live reload: the container folder is polled (and SIGHUP asks for a reload); a changed container
is loaded and validated in a worker thread, then swapped in between two requests.

A broken edit never replaces the running container: every problem is logged at error level and
the old container keeps serving until a later edit loads cleanly. The active version is logged at
every swap; a valid container without tags is swapped in too, with a warning (nothing fires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from tagserver.container.model import Container
from tagserver.exceptions import ConfigError

log = logging.getLogger("tagserver.container")

Fingerprint = tuple[tuple[str, int, int], ...]


def folder_fingerprint(directory: Path) -> Fingerprint:
    """``(name, mtime ns, size)`` of every ``*.json`` of ``directory``; cheap to poll."""
    entries: list[tuple[str, int, int]] = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name.endswith(".json"):
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue
                    entries.append((entry.name, stat.st_mtime_ns, stat.st_size))
    except OSError:
        return ()
    return tuple(sorted(entries))


class ContainerReloader:
    """Polls ``directory`` every ``interval`` seconds (0: only on SIGHUP) and calls ``activate``
    with each new valid container. ``load`` is :func:`~tagserver.container.loader.load_container` bound to the
    environment (a parameter for tests)."""

    def __init__(
        self,
        directory: Path,
        *,
        current: Callable[[], Container],
        activate: Callable[[Container], None],
        load: Callable[[Path], Container],
        interval: float = 1.0,
    ) -> None:
        self.directory = directory
        self.interval = interval
        self._current = current
        self._activate = activate
        self._load = load
        self._fingerprint = folder_fingerprint(directory)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._signal_installed = False
        self.reloads = 0
        self.failures = 0

    async def start(self) -> None:
        """Start polling and listen for SIGHUP (where the platform and thread allow it)."""
        self._task = asyncio.create_task(self._run(), name="tagserver-container-reload")
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_reload)
            self._signal_installed = True

    async def stop(self) -> None:
        if self._signal_installed:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def request_reload(self) -> None:
        """Reload at once (SIGHUP), whether or not the files look changed."""
        log.info("reload requested", extra={"directory": str(self.directory)})
        self._fingerprint = ()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # interval 0: SIGHUP only
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval or None)
            self._wake.clear()
            try:
                await self.check()
            except Exception:  # the poller must survive anything
                log.exception("container reload failed unexpectedly")

    async def check(self) -> bool:
        """Reload when the folder changed since the last look; True when a new container is
        active."""
        fingerprint = await asyncio.to_thread(folder_fingerprint, self.directory)
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        return await self.reload()

    async def reload(self) -> bool:
        """Load and validate in a worker thread; swap only a valid, different container."""
        try:
            container = await asyncio.to_thread(self._load, self.directory)
        except ConfigError as exc:
            self.failures += 1
            log.error(
                "container edit rejected; the running container stays active",
                extra={
                    "active_version": self._current().version,
                    "problems": len(exc.issues),
                },
            )
            for issue in exc.issues:
                log.error(
                    "container problem",
                    extra={"file": issue.where, "path": issue.path, "problem": issue.message,
                           "hint": issue.hint},
                )
            return False
        if container.version == self._current().version:
            return False
        previous = self._current().version
        self._activate(container)
        self.reloads += 1
        if not container.tags:  # valid, but often an editor between delete and re-create
            log.warning(
                "container has no tags: nothing will fire",
                extra={"container_version": container.version, "previous_version": previous},
            )
        log.info(
            "container loaded",
            extra={
                "container_version": container.version,
                "previous_version": previous,
                "tags": [t.name for t in container.tags],
            },
        )
        return True


def loader_for(environ: Mapping[str, str]) -> Callable[[Path], Container]:
    """``load_container`` bound to ``environ``, for :class:`ContainerReloader`."""
    from tagserver.container.loader import load_container

    def load(directory: Path) -> Container:
        return load_container(directory, environ=environ)

    return load
