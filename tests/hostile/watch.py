"""Which files a piece of code opens: Python's audit hook sees every open() and os.open(), so a
test can assert that nothing outside a checkout was read (not only that an error was raised)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_state = threading.local()
_watches: list[list[str]] = []


def _hook(event: str, args: tuple) -> None:
    if event != "open" or not _watches or getattr(_state, "busy", False):
        return
    path = args[0] if args else None
    if not isinstance(path, (str, bytes, os.PathLike)):
        return  # an fd
    _state.busy = True
    try:
        # Resolved now: a checkout's symlinks are gone once the pipeline removed it.
        real = os.path.realpath(os.fsdecode(path))
        for watch in _watches:
            watch.append(real)
    finally:
        _state.busy = False


sys.addaudithook(_hook)


@contextlib.contextmanager
def opened_files():
    """Yields a list that collects the resolved path of every file opened meanwhile."""
    seen: list[str] = []
    _watches.append(seen)
    try:
        yield seen
    finally:
        _watches.remove(seen)


def reads_under(seen: list[str], *roots: str) -> list[str]:
    """The opened paths that lie under any of `roots` (files or directories)."""
    out = []
    for p in seen:
        for root in roots:
            root = os.path.realpath(root)
            if p == root or p.startswith(root.rstrip("/") + "/"):
                out.append(p)
    return out
