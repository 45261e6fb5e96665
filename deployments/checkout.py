"""A clone is untrusted data: what Koyra or docker-py opens by name in it must resolve inside it.

Git stores symlinks. Opened by name, a symlink in a repository could make the worker read any
file of the control plane (`/etc/...`, another app's checkout) or `/dev/zero` (until memory runs
out). So every path Koyra or docker-py opens by name in a checkout goes through here: the
manifest (`.paas/app.yaml`), the build context, its Dockerfile and its `.dockerignore`.

Symlinks elsewhere in the build context are left as they are: docker-py archives a link as a
link (it never follows one), and the engine resolves it inside the context, so a link to
`/etc/passwd` builds as a dangling link, never as the host's file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# More than any real .dockerignore or manifest; bounds what one file can make the worker hold.
MAX_FILE_BYTES = 64 * 1024
_NO_LINK = (
    "must be a regular file, not a symlink (Koyra reads only files inside the repository); "
    "commit the file itself"
)


class CheckoutError(Exception):
    """A file of the repository Koyra will not open; str() names it and says why."""


def inside(root: Path, rel: str, what: str) -> Path:
    """`root/rel`, resolved, if that stays inside root (neither `..` nor a symlink leaves it)."""
    base = root.resolve()
    try:
        path = (base / rel).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        raise CheckoutError(f"{what}: {rel} cannot be resolved (a symlink loop?)") from None
    if path != base and base not in path.parents:
        raise CheckoutError(
            f"{what}: {rel} points outside the repository (through a symlink or ..); Koyra "
            "reads only files inside the checkout"
        )
    return path


def read_regular(path: Path, shown: str, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, which must be a regular file (no symlink, no device) of at most
    `limit` bytes; `shown` is how messages name it (a path relative to the repository)."""
    if path.is_symlink():  # not even opened (O_NOFOLLOW below closes the race)
        raise CheckoutError(f"{shown}: {_NO_LINK}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise CheckoutError(f"{shown} cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckoutError(f"{shown} must be a regular file")
        if st.st_size > limit:
            raise CheckoutError(f"{shown} is {st.st_size} bytes; the limit is {limit // 1024} KiB")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise CheckoutError(f"{shown} is over {limit // 1024} KiB")
    return data


def no_symlink(root: Path, rel: str) -> None:
    """Refuse a symlink at any component of `root/rel` (what git checked out, not followed)."""
    path = root
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            shown = path.relative_to(root).as_posix()
            raise CheckoutError(f"{shown}: {_NO_LINK}")


def build_files(root: Path, context: str, dockerfile: str) -> tuple[Path, str]:
    """The build context (resolved) and the Dockerfile relative to it, checked: both inside
    the checkout, the Dockerfile inside the context, and the context's `.dockerignore` (which
    docker-py opens by name and reads whole) a small regular file or absent."""
    ctx = inside(root, context, "build.context")
    if not ctx.is_dir():
        raise CheckoutError(f"build.context: {context} is not a directory of the repository")
    df = inside(root, f"{context}/{dockerfile}", "build.dockerfile")
    if ctx not in df.parents:
        raise CheckoutError(
            f"build.dockerfile: {dockerfile} resolves outside the build context {context}; "
            "keep the Dockerfile inside it"
        )
    ignore = ctx / ".dockerignore"
    if ignore.is_symlink() or ignore.exists():
        read_regular(ignore, f"{_rel(root, ignore)}", limit=MAX_FILE_BYTES)
    return ctx, df.relative_to(ctx).as_posix()


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name
