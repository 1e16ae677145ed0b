"""The JSON files memlib keeps on disk, read within limits and written atomically (standard library only).

:func:`read_json` (and :func:`parse`, for bytes already read) refuses, with one :class:`MalformedJSON` whose message
is one line naming the file, a file that is larger than ``max_bytes``, nested deeper than ``max_depth`` (counted by
scanning its brackets before :func:`json.loads` sees it, so a file of ``'[' * 100000`` never reaches the parser's
recursion limit), not UTF-8 text, or not JSON.  It opens a regular file only, never through a symbolic link.

:func:`write_json_atomic` writes a temporary file in the same folder, flushes and fsyncs it, renames it over the
target (:func:`os.replace`, atomic) and fsyncs the folder where the filesystem allows: a reader sees the old file or
the new one, never a torn one, and a write that fails leaves the old file and no temporary file behind.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

MAX_BYTES = 64 << 20  # no record, manifest or configuration memlib writes comes near this
MAX_DEPTH = 64        # the deepest memlib writes is about 6 (an import record holding a bundle's manifest)

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class MalformedJSON(ValueError):
    """A JSON file that cannot be read as what it should be; ``str(e)`` is one line: the file, then why."""

    def __init__(self, where: Any, reason: str):
        self.where, self.reason = str(where), reason
        super().__init__(f"{where} {reason}")


def jsonable(v: Any) -> Any:
    """``v`` with numpy/torch scalars and arrays turned into Python numbers and lists, and dict keys into
    strings, recursively: what :func:`json.dumps` can write."""
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (ValueError, RuntimeError):
            pass
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def nesting_depth(text: str) -> int:
    """How deeply the arrays and objects of JSON ``text`` nest (brackets inside strings are not counted)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def parse(data: bytes | str, where: Any, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``data`` (the bytes of the file ``where``), or :class:`MalformedJSON`."""
    if len(data) > max_bytes:
        raise MalformedJSON(where, f"is {len(data):,} bytes, more than a JSON file may hold here ({max_bytes:,})")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedJSON(where, f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if nesting_depth(data) > max_depth:
        raise MalformedJSON(where, f"nests arrays or objects more than {max_depth} levels deep")
    try:
        return json.loads(data)
    except RecursionError:
        raise MalformedJSON(where, "nests arrays or objects too deeply to be read") from None
    except ValueError as e:
        raise MalformedJSON(where, f"is not valid JSON ({e})") from None


def read_json(path: Path | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in the regular file ``path`` (see :func:`parse`).  ``FileNotFoundError`` when it is missing;
    :class:`MalformedJSON` when it is a link, a folder or another special file, unreadable, or malformed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        what = "is a symbolic link" if os.path.islink(path) else f"cannot be opened ({e.strerror or e})"
        raise MalformedJSON(path, what) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise MalformedJSON(path, "is not a regular file")
        if st.st_size > max_bytes:
            raise MalformedJSON(path, f"is {st.st_size:,} bytes, more than a JSON file may hold here ({max_bytes:,})")
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise MalformedJSON(path, f"cannot be read ({e.strerror or e})") from None
    return parse(data, path, max_bytes=max_bytes, max_depth=max_depth)


def fsync_dir(path: Path | str) -> None:
    """Make a rename in the folder ``path`` durable, where the filesystem allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path | str, obj: Any, **dumps_kwargs: Any) -> Path:
    """Write ``json.dumps(obj, **dumps_kwargs)`` and a newline to ``path`` atomically (see the module docstring);
    returns the path.  The value is serialized before anything is written; ``OSError`` when the folder cannot take
    the file."""
    path = Path(path)
    data = (json.dumps(obj, **dumps_kwargs) + "\n").encode()
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)  # umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path
