"""Input integrity: is a path a readable file, and is a compressed file complete and uncorrupted?

Why: nibabel reads a ``.nii.gz`` only as far as the image needs, so neither a flipped byte (a
corrupt voxel, e.g. 3.9e25, that max-abs scaling turns into a zeroed component) nor a file cut
in its gzip trailer is noticed. :func:`verify_compressed` reads the whole stream with Python's
``gzip`` module (which checks the CRC32 and the ISIZE length of every member) or ``bz2`` (block
CRCs); :func:`path_problem` tells a missing file from a directory, a symbolic-link loop, a
broken link or a file that cannot be read, each with its own message.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import os
import stat
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_CHUNK = 1 << 20  # bytes decompressed per read: memory stays flat whatever the file size
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"


def path_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being read as a regular file, or None when it can be.

    Returns one of: ``does not exist``, ``is a broken symbolic link (to ...)``, ``is a symbolic
    link loop ...``, ``is a directory ...``, ``is not a regular file ...``, ``cannot be read
    (permission denied)``, ``cannot be reached: ...`` (a parent is a file, or not searchable).
    """
    path = Path(path)
    try:
        info = path.stat()  # follows symbolic links
    except FileNotFoundError:
        if path.is_symlink():
            return f"is a broken symbolic link (to {os.readlink(path)!s}, which does not exist)"
        return "does not exist"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return ("is a symbolic link loop (too many levels of symbolic links); expected a link that "
                    "ends at a file")
        if err.errno == errno.ENOTDIR:
            return "cannot be reached: a folder in its path is a file"
        if err.errno == errno.EACCES:
            return "cannot be reached: permission denied on a folder in its path"
        return f"cannot be reached ({err.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory; expected a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a FIFO, socket or device); expected a file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def compression_of(path: str | os.PathLike) -> str | None:
    """``"gzip"`` or ``"bz2"`` from the file's first bytes (not its name), else None."""
    with open(path, "rb") as f:
        head = f.read(3)
    if head[:2] == _GZIP_MAGIC:
        return "gzip"
    if head == _BZ2_MAGIC:
        return "bz2"
    return None


def verify_compressed(path: str | os.PathLike) -> str | None:
    """Decompress the whole file and return what is wrong with it, or None when it is intact.

    A gzip file is checked member by member against its CRC32 and length trailer, a bz2 file
    against its block and stream CRCs. A file that is not compressed is not checked (None).
    """
    kind = compression_of(path)
    if kind is None:
        return None
    opener = gzip.open if kind == "gzip" else bz2.open
    try:
        with opener(path, "rb") as stream:
            while stream.read(_CHUNK):
                pass
    except EOFError:
        return (f"cannot be read in full: it is truncated (its {kind} stream ends before its end marker; "
                "a cut copy or an interrupted download?)")
    except gzip.BadGzipFile as err:
        text = str(err)
        if "CRC" in text:
            return f"is corrupt: gzip CRC32 check failed ({text}); the data differ from what was compressed"
        if "length" in text.lower():
            return f"is corrupt: gzip length check failed ({text})"
        return f"is corrupt: not a valid gzip stream ({text})"
    except (zlib.error, OSError, ValueError) as err:  # bad deflate data; bz2 raises OSError/ValueError
        return f"is corrupt: its {kind} data cannot be decompressed ({type(err).__name__}: {err})"
    return None


def file_problem(path: str | os.PathLike, verify: bool = True) -> str | None:
    """:func:`path_problem`, then (``verify``) :func:`verify_compressed`: None when the file is usable."""
    problem = path_problem(path)
    if problem is None and verify:
        try:
            problem = verify_compressed(path)
        except OSError as err:  # vanished or unreadable between the two checks
            problem = f"cannot be read ({err.strerror or err})"
    return problem


def verify_manifest_files(manifest, columns: Sequence[str] = ("icn_path", "smri_path"), progress: bool = False) -> None:
    """Check every file of a VAE manifest completely (see :func:`file_problem`) before anything is
    prepared; raise one InputError naming each subject, column and file at fault.

    Args:
        manifest: a :class:`fusion.data.manifest.VAEManifest` (entries with ``subject_id``,
            ``line`` and the path attributes named in ``columns``).
        columns: the entry attributes holding file paths.
        progress: show a progress bar over the files.
    """
    from tqdm.auto import tqdm

    from fusion.data.manifest import raise_collected

    owners: dict[Path, list[tuple[str, str, int]]] = {}
    for entry in manifest.entries:
        for column in columns:
            owners.setdefault(Path(getattr(entry, column)), []).append((entry.subject_id, column, entry.line))
    paths = list(owners)
    problems: list[str] = []
    with tqdm(total=len(paths), desc="verify", unit="file", disable=not progress) as bar:
        workers = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for path, problem in zip(paths, pool.map(file_problem, paths)):
                bar.update()
                if problem is None:
                    continue
                subject, column, line = owners[path][0]
                others = len(owners[path]) - 1
                shared = f" (also used by {others} other row(s))" if others else ""
                problems.append(f"subject {subject!r} (manifest line {line}): {column} file {path} {problem}{shared}")
    raise_collected(problems, f"manifest {manifest.path}")
