"""Atomic writes of files and folders: a crash (even SIGKILL) never leaves a partial file or folder.

Files: written to a temp file beside the target (``.<name>.<random>.tmp``), fsync'd, renamed over it.

Folders: built in a temp sibling (``.<name>.<pid>.<random>.tmp``), every file and folder fsync'd, then
swapped in with two renames::

    rename(final -> .<name>.old)   # only when final exists
    rename(tmp -> final)
    remove .<name>.old

Invariant: at every instant the path holds the complete old folder or the complete new one, or it is
missing while ``.<name>.old`` holds the complete old folder; ``recover_folder`` (called by the next
replacement, and by anyone at start-up) renames that backup back. Never none, never a mix. The backup
is only restored while the final path is missing: once the new folder is in place a leftover backup is
garbage and is removed. Temp siblings of dead writers are removed the same way. Two processes writing
the same folder at once are not supported (the last one wins, and each may remove the other's backup).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_TMP_DIR = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the umask); mkstemp's
    temp files are 0o600, which would make every atomically written output private to its owner."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def default_dir_mode() -> int:
    """The mode a plain ``os.mkdir`` would give a new folder (0o777 minus the umask); mkdtemp's folders are
    0o700, which would make every atomically written output folder private to its owner."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a directory so the renames inside it survive a power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` to create a temp file beside `path`, then fsync and rename it into place.

    For writers that need a path of their own (safetensors, ``torch.save``); the temp file is removed
    when `write` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0o600; some writers recreate the file
        _fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder + rename."""
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def backup_path(final: str | os.PathLike) -> Path:
    """Where the old folder waits while a replacement is being swapped in."""
    final = Path(final)
    return final.with_name(f".{final.name}.old")


def recover_folder(final: str | os.PathLike) -> None:
    """Finish or undo a replacement that was interrupted: restore the backup when `final` is missing,
    drop it when `final` is there, and remove temp siblings whose writer process is gone."""
    final = Path(final)
    backup = backup_path(final)
    if backup.exists() or backup.is_symlink():
        if final.exists() or final.is_symlink():
            _remove(backup)
        else:
            os.rename(backup, final)
            fsync_dir(final.parent)
    if final.parent.is_dir():
        for entry in final.parent.iterdir():
            m = _TMP_DIR.match(entry.name)
            if m and m["name"] == final.name and not _alive(int(m["pid"])):
                shutil.rmtree(entry, ignore_errors=True)


def replace_folder(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Swap the complete folder `tmp` (a sibling of `final`) in for `final`, keeping the old folder as a
    backup until the new one is in place (see the module docstring for the invariant)."""
    tmp, final = Path(tmp), Path(final)
    if tmp.parent.resolve() != final.parent.resolve():
        raise ValueError(f"{tmp} must be a sibling of {final} (a rename never crosses folders)")
    recover_folder(final)
    _fsync_tree(tmp)
    backup = backup_path(final)
    had_old = final.exists() or final.is_symlink()
    if had_old:
        os.rename(final, backup)
        fsync_dir(final.parent)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if had_old:
        _remove(backup)


def temp_folder(final: str | os.PathLike) -> Path:
    """A new empty temp sibling of `final`, named so that ``recover_folder`` can tell its writer."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp"))
    os.chmod(tmp, default_dir_mode())
    return tmp


@contextmanager
def atomic_folder(final: str | os.PathLike, keep_others: bool = False) -> Iterator[Path]:
    """``with atomic_folder(out) as tmp:`` write the whole new folder into `tmp`; on success it replaces
    `out` (``replace_folder``), on any error `tmp` is removed and `out` is untouched.

    keep_others: copy entries of the old folder that the new one does not have (a writer that only owns
    some files of a folder, e.g. ``save_pretrained``, keeps the rest as writing in place would)."""
    final = Path(final)
    recover_folder(final)
    tmp = temp_folder(final)
    try:
        yield tmp
        if keep_others and final.is_dir():
            for entry in final.iterdir():
                dst = tmp / entry.name
                if dst.exists() or dst.is_symlink():
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, dst, symlinks=True)
                else:
                    shutil.copy2(entry, dst, follow_symlinks=False)
        replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                _fsync_file(p)
        for name in dirs:
            fsync_dir(Path(root) / name)
    fsync_dir(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
