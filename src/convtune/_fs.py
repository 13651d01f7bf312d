"""File helpers: atomic directories, durable writes, path confinement, content hashes.

The ground floor: nothing here knows what a model is, only which file names mark a directory
that convtune wrote (so that --overwrite never deletes anything else)."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from convtune.errors import ConvtuneError

CONFIG_NAME = "convtune.json"  # the manifest of a saved model or export
# What marks a directory convtune wrote, so that --overwrite may delete it: a saved model (or
# an export), or a compare report (both of its files: a bench folder also holds results.json).
OWN_OUTPUT_MARKS = ((CONFIG_NAME,), ("report.md", "results.json"))


def _refuse_existing(final: Path, overwrite: bool) -> None:
    if final.exists() and not final.is_dir():  # --overwrite replaces run directories, never files
        raise ConvtuneError(f"{final} is a file; the output must be a directory (choose another --out)")
    if final.exists() and any(final.iterdir()):
        if not overwrite:
            raise ConvtuneError(f"{final} already exists and is not empty; pass --overwrite or another --out")
        # --overwrite deletes the old directory: only ever one convtune wrote (`--out .` or a
        # home directory with --overwrite would otherwise be deleted after training).
        if not any(all((final / name).is_file() for name in mark) for mark in OWN_OUTPUT_MARKS):
            raise ConvtuneError(f"{final} is not a convtune output (no {CONFIG_NAME}, no compare report); "
                                "--overwrite replaces only those; choose another --out")


def no_space(e: BaseException) -> bool:
    """Whether `e` says the disk is full (OSError ENOSPC, or safetensors' Rust I/O error text)."""
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or any(
        s in str(e) for s in ("No space left on device", "os error 28", "StorageFull"))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class DiskFull(ConvtuneError):
    """A full disk, said in one line; keeps the numbers so that the line can name the final path."""

    def __init__(self, message: str, needed: int | None, written: int | None):
        super().__init__(message)
        self.needed, self.written = needed, written


def _free_bytes(path: Path) -> int:
    """Free bytes on the device that holds `path` (or its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def disk_full(path: Path, needed: int | None = None, written: int | None = None) -> DiskFull:
    """The one line for a full disk: which path, how much it needs (or had written), how much is free."""
    free = _free_bytes(path)
    need = f"it needs about {_mb(needed)}" if needed is not None else f"{_mb(written or 0)} were written"
    return DiskFull(f"no space left on the device holding {path}: {need}, {_mb(free)} free; free some "
                    "space or write elsewhere (nothing half-written was kept)", needed, written)


def require_space(path: Path, needed: int) -> None:
    """Refuse before writing `needed` bytes under `path` when the disk cannot hold them."""
    if _free_bytes(path) < needed:
        raise disk_full(path, needed)


def tree_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(final: Path) -> None:
    """Delete what killed writers of `final` left: `.NAME.partial-PID-*` / `.NAME.old-PID`
    folders whose process is gone (kill -9 and power cuts skip every clean-up)."""
    for p in final.parent.glob(f".{glob.escape(final.name)}.*"):
        m = re.fullmatch(rf"\.{re.escape(final.name)}\.(?:partial-(\d+)-\w+|old-(\d+))", p.name)
        if m and p.is_dir() and not pid_alive(int(m.group(1) or m.group(2))):
            shutil.rmtree(p, ignore_errors=True)


def fsync_tree(directory: Path) -> None:
    """Flush every file under `directory`, then the folders themselves, to the disk: a rename is
    only as durable as what it renames (without this a power cut can leave empty files)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False):
    """Yield a temporary directory that becomes `final` only if the block succeeds.

    Without `overwrite`, a `final` that another process filled while the block ran is left
    alone (ConvtuneError); whatever fails, the temporary directory does not stay behind. The
    result is flushed to disk before it is renamed into place, and partial directories that
    killed runs left beside `final` are removed first.
    """
    final = Path(final)
    _refuse_existing(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a saved model should read like any directory
    old = None
    try:
        yield tmp
        _refuse_existing(final, overwrite)
        fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
        tmp.rename(final)
        fsync_dir(final.parent)
    except BaseException as e:
        if old is not None and not final.exists():
            old.rename(final)               # put the previous directory back
            old = None
        written = tree_size(tmp) if no_space(e) else 0
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, DiskFull):  # said of the temporary directory: say it of the output
            raise disk_full(final, e.needed, e.written) from None
        if no_space(e):
            raise disk_full(final, written=written) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def sole_writer(target: Path, what: str):
    """Hold an exclusive lock on `target` for the block: a second writer of the same file is
    refused in one line while the first lives. The lock is the kernel's (flock on a hidden
    `.NAME.lock` beside it), so a writer killed with -9 releases it by dying."""
    import fcntl

    lock = target.with_name(f".{target.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ConvtuneError(f"{target} is being written by another {what}"
                                f"{f' (pid {holder})' if holder.isdigit() else ''}; "
                                "wait for it to finish, or choose another output") from None
        try:  # the holder before us may have removed the file we opened: lock the one on disk
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held: a waiting writer re-checks the inode
        os.close(fd)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def inside(directory: str | Path, name: str) -> Path:
    """`directory / name`, refused unless it stays inside `directory` (a manifest names files
    by relative path; `../x` or an absolute path would read files from anywhere)."""
    base = Path(directory).resolve()
    path = (base / name).resolve() if isinstance(name, str) and name.strip() else base
    if not path.is_relative_to(base) or path == base:
        raise ConvtuneError(f"{directory}: {CONFIG_NAME} names {name!r}, which is not a file inside the model directory")
    return path


def model_fingerprint(directory: str | Path) -> str:
    """A hash of a saved model's content (every file but evaluate's eval-*.json): it changes
    when the model is retrained or re-exported into the same directory."""
    h = hashlib.sha256()
    base = Path(directory)
    for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("eval-")):
        h.update(str(path.relative_to(base)).encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()
