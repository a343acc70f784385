"""Small shared helpers: atomic outputs, logging, file checks."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

from . import GTAError

log = logging.getLogger("gta")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    A failed or killed writer leaves no partial file under the final name.
    `suffix` keeps an extension on the temporary name for libraries that care.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like `atomic_path` for a directory: build it under a temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_id(path: str | os.PathLike) -> list:
    """Identity of a file or folder for resume fingerprints: resolved path, size and mtime (ns)."""
    st = os.stat(path)
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def require_file(path: str | os.PathLike, what: str, fix: str = "", input: str | None = None) -> Path:
    """Return `path` as a Path if it is a readable file, else raise GTAError naming it (`input`: GTAError.input)."""
    p = Path(path)
    if not p.is_file():
        msg = f"{what} not found: {p}"
        raise GTAError(msg + (f" ({fix})" if fix else ""), input=input)
    return p


def check_writable(path: str | os.PathLike, input: str | None = None, folder: bool = False) -> None:
    """Stop before any work when `path` (a file, or with `folder` a folder) cannot be written: it is a folder
    (a file), the nearest existing folder above it is a file, or that folder refuses a new file (read-only,
    no permission). Nothing is created (a test file is made and deleted at once)."""
    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        kind = ("a file", "a folder") if folder else ("a folder", "a file name")
        raise GTAError(f"output {p} is {kind[0]}; give {kind[1]} (or a path that does not exist yet)", input=input)
    above = p if folder else p.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    try:
        if not above.is_dir():
            raise NotADirectoryError(20, "not a folder", str(above))
        tempfile.TemporaryFile(dir=above).close()
    except OSError as e:
        raise GTAError(
            f"cannot write output {p}: {above}: {e.strerror}; choose a writable location", input=input
        ) from None


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (rules redirect it into their log file) with timestamps."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("gta")
    root.handlers[:] = [handler]
    root.setLevel(level)
