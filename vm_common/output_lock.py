"""One writer per output folder: an advisory lock that every command writing a folder holds while it works.

The lock is ``FOLDER/.vm-lock``, held with ``flock`` (released by the kernel when its holder dies, kill -9
included) and filled with who holds it: pid, host, start time and command. A second writer is refused with one line
naming the holder. A lock file that still names a holder although nobody holds the lock was left by a process that
died; it is taken over with a warning, and the temporaries of the dead writer's interrupted writes (files and
checkpoint folders named like :mod:`vm_common.io_utils`' temporaries, ``.NAME.XXXX.tmp[.ext]``) are removed, so
that a kill -9 at any moment followed by a rerun or ``--resume`` leaves no orphans. In a multi-process (``accelerate launch``) run only the main process takes the
lock: the processes of one run are one writer.

Commands that clear a folder (``--overwrite``) must keep :data:`LOCK_NAME` (see :func:`clear_folder`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import fnmatch
import json
import logging
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

logger = logging.getLogger(__name__)

LOCK_NAME = ".vm-lock"
TEMPORARY_PATTERN = ".*.tmp*"  # vm_common.io_utils' temporary files, vm_model.train's temporary checkpoint folders


class OutputFolderBusy(UserError, RuntimeError):
    """Another process is writing the output folder; the message names it."""


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (no details recorded)"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started_utc')}: "
            f"{holder.get('command')}")


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    try:
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return {"command": "(unreadable lock file)"}
    return holder if isinstance(holder, dict) else {}


@contextmanager
def hold_output_folder(folder: str | os.PathLike, command: str | None = None, *, is_main: bool = True
                       ) -> Iterator[Path]:
    """Hold ``folder`` (created if needed) for this command; raise :class:`OutputFolderBusy` if another holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not is_main:
        yield folder
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputFolderBusy(f"{folder} is being written by {_describe(_read_holder(fd))}; wait for it to "
                                   f"finish or choose another output folder") from None
        taken = time.time()
        stale = _read_holder(fd)
        if stale:
            logger.warning("%s: taking over the lock left by %s, which is no longer running", folder,
                           _describe(stale))
            removed = remove_orphan_temporaries(folder, older_than=taken)
            if removed:
                logger.warning("%s: removed %d temporary file(s) or folder(s) of its interrupted writes", folder,
                               removed)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)  # released cleanly: nothing stale to report
    finally:
        os.close(fd)  # closing releases the flock


def remove_orphan_temporaries(folder: str | os.PathLike, *, older_than: float) -> int:
    """Delete, anywhere under ``folder``, the temporaries (:data:`TEMPORARY_PATTERN`) of a writer that died: only
    those last changed before ``older_than`` (a ``time.time()``; the lock's takeover), so that none the new run's
    other processes may already be writing is touched. Symbolic links are neither followed nor removed. Returns
    how many files and folders were removed."""
    removed = 0
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if fnmatch.fnmatch(d, TEMPORARY_PATTERN)]:
            path = os.path.join(root, name)
            dirs.remove(name)  # not walked into: removed whole, or left whole
            if not os.path.islink(path) and os.lstat(path).st_mtime < older_than:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        for name in files:
            path = os.path.join(root, name)
            if fnmatch.fnmatch(name, TEMPORARY_PATTERN) and not os.path.islink(path):
                try:
                    if os.lstat(path).st_mtime < older_than:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    pass
    return removed


def clear_folder(folder: str | os.PathLike) -> None:
    """Delete everything in ``folder`` except the lock file (``--overwrite`` while holding the folder)."""
    for entry in Path(folder).iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def folder_has_outputs(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds anything besides the lock file."""
    folder = Path(folder)
    return folder.is_dir() and any(entry.name != LOCK_NAME for entry in folder.iterdir())
