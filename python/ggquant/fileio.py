"""The file layer every ggquant reader and writer goes through (paths, file types, temporaries).

One implementation of the rules for untrusted paths and interrupted writes:

* :func:`fs_path` / :func:`native_path`: a path may be ``str``, ``bytes`` or ``os.PathLike``,
  including names that are not UTF-8 (surrogate-escaped ``str``, as ``os.fsdecode`` makes them);
  an embedded NUL is refused (the OS would silently open the part before it).
* :func:`read_regular_file` / :func:`check_regular_file`: only regular files are read, and opening
  never blocks (a FIFO passed as a model file would otherwise wait for a writer forever).
* :func:`check_not_an_input`: an output path must not be one of the files it is made from.
* :func:`remove_stale_temporaries`: temporaries left by a process that died (SIGKILL) are removed
  by the next writer of the same output; those of live processes are never touched.
* :func:`sigterm_as_interrupt`: SIGTERM runs the same cleanup as Ctrl-C (``KeyboardInterrupt``).
* :func:`check_size_unchanged`: a memory-mapped input that another process truncated would kill the
  reader with SIGBUS when touched; checking its size before each tensor turns that into an error.

Example:
    >>> import os, tempfile
    >>> from ggquant.fileio import fs_path, read_regular_file
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with open(p, "wb") as f:
    ...     _ = f.write(b"hi")
    >>> read_regular_file(os.fsencode(p), "text file")
    b'hi'
    >>> fs_path(b"a\\x00b")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ggquant.errors.GGQuantIOError: path ... contains an embedded NUL byte
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import FormatError, GGQuantError, GGQuantIOError

PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]

# what the C++ writer and the converters name their temporaries: OUT.tmp-PID-N (files) and
# .OUT.partial-PID (MLX output folders)
_TMP_FILE_RE = re.compile(r"\.tmp-(\d+)-\d+$")
_PARTIAL_DIR_RE = re.compile(r"\.partial-(\d+)$")


def fs_path(path: Any, what: str = "path") -> str:
    """The path as ``str`` (undecodable bytes surrogate-escaped), checked.

    Args:
        path: ``str``, ``bytes`` or ``os.PathLike``.
        what: what the path is, for the error message.

    Returns:
        ``os.fsdecode(path)``.

    Raises:
        GGQuantError: ``path`` is not a path.
        GGQuantIOError: the path contains a NUL byte.

    Example:
        >>> from ggquant.fileio import fs_path
        >>> fs_path(b"caf\\xe9.gguf")
        'caf\\udce9.gguf'
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise GGQuantError(f"{what} must be a str, bytes or os.PathLike, not {type(path).__name__}")
    try:
        p = os.fsdecode(os.fspath(path))
    except TypeError as e:  # a PathLike whose __fspath__ returns something else
        raise GGQuantError(f"{what} {path!r} is not a valid path: {e}") from None
    if "\0" in p:
        raise GGQuantIOError(f"{what} {p!r} contains an embedded NUL byte")
    return p


def native_path(path: Any, what: str = "path") -> bytes:
    """The path as the bytes the OS sees (what the C++ layer opens), checked as :func:`fs_path`.

    Example:
        >>> from ggquant.fileio import native_path
        >>> native_path("caf\\udce9.gguf")
        b'caf\\xe9.gguf'
    """
    return os.fsencode(fs_path(path, what))


def _os_error(action: str, path: str, e: OSError) -> GGQuantIOError:
    return GGQuantIOError(f"cannot {action} {path!r}: {e.strerror or e}")


def read_regular_file(path: Any, what: str, max_bytes: int | None = None) -> bytes:
    """The whole content of a regular file, opened without blocking.

    Args:
        path: the file.
        what: what it is (``"imatrix file"``), for error messages.
        max_bytes: refuse a larger file (its size is checked before reading).

    Returns:
        The bytes.

    Raises:
        GGQuantIOError: the file cannot be opened or read, is not a regular file (a FIFO, a
            device, a folder), or is larger than ``max_bytes``.

    Example:
        See the module docstring.
    """
    p = fs_path(path, what)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise _os_error(f"read {what}", p, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GGQuantIOError(f"{what} {p!r} is not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise GGQuantIOError(f"{what} {p!r} is {st.st_size} bytes, over the limit of {max_bytes}")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise _os_error(f"read {what}", p, e) from None
    finally:
        os.close(fd)


def read_text_file(path: Any, what: str, errors: str = "strict") -> str:
    """The UTF-8 text of a regular file, read as :func:`read_regular_file` reads it.

    Raises:
        GGQuantIOError: as :func:`read_regular_file`; FormatError: not UTF-8 (with ``errors="strict"``).

    Example:
        >>> import os, tempfile
        >>> from ggquant.fileio import read_text_file
        >>> p = os.path.join(tempfile.mkdtemp(), "c.json")
        >>> with open(p, "w") as f:
        ...     _ = f.write("{}")
        >>> read_text_file(p, "config")
        '{}'
    """
    data = read_regular_file(path, what)
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise FormatError(f"{what} {fs_path(path)!r} is not valid UTF-8: {e}") from None


def check_regular_file(path: Any, what: str) -> str:
    """Check that ``path`` names an existing regular file (symlinks followed); return it as ``str``.

    Example:
        >>> from ggquant.fileio import check_regular_file
        >>> check_regular_file("/dev/null", "model file")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ggquant.errors.GGQuantIOError: model file '/dev/null' is not a regular file
    """
    p = fs_path(path, what)
    try:
        st = os.stat(p)
    except OSError as e:
        raise _os_error(f"open {what}", p, e) from None
    if not stat.S_ISREG(st.st_mode):
        raise GGQuantIOError(f"{what} {p!r} is not a regular file")
    return p


def check_size_unchanged(path: Any, expected: int, what: str = "input file") -> None:
    """Raise if ``path`` is no longer ``expected`` bytes long (truncated or replaced while in use).

    A memory-mapped file that shrinks kills the process with SIGBUS when a page past the new end
    is touched; call this before reading each tensor of a long-running job. (A file truncated
    between this check and the read can still do it: only copying would close that window.)

    Example:
        >>> import os, tempfile
        >>> from ggquant.fileio import check_size_unchanged
        >>> p = os.path.join(tempfile.mkdtemp(), "a.bin")
        >>> open(p, "wb").close()
        >>> check_size_unchanged(p, 0)
    """
    p = fs_path(path, what)
    try:
        size = os.stat(p).st_size
    except OSError as e:
        raise _os_error(f"check {what}", p, e) from None
    if size != expected:
        raise GGQuantIOError(
            f"{what} {p!r} changed size while being read ({expected} bytes when opened, {size} now): "
            "another process truncated or replaced it"
        )


def check_not_an_input(output: Any, inputs: Iterable[Any], what: str = "output") -> None:
    """Refuse an output path that is (or, for a folder output, contains) one of the inputs.

    Args:
        output: the file or folder about to be written.
        inputs: the files it is made from.
        what: what the output is, for the message.

    Raises:
        GGQuantIOError: writing ``output`` would overwrite an input.

    Example:
        >>> import os, tempfile
        >>> from ggquant.fileio import check_not_an_input
        >>> d = tempfile.mkdtemp(); cfg = os.path.join(d, "config.json"); open(cfg, "w").close()
        >>> check_not_an_input(cfg, [cfg])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ggquant.errors.GGQuantIOError: output ... is one of the input files ...
    """
    out = fs_path(output, what)
    real_out = os.path.realpath(out)
    is_folder = os.path.isdir(out)
    for src in inputs:
        s = fs_path(src, "input")
        if not os.path.exists(s):
            continue
        real_s = os.path.realpath(s)
        if real_out == real_s or (os.path.exists(out) and os.path.samefile(out, s)):
            raise GGQuantIOError(f"{what} {out!r} is one of the input files ({s!r}); choose another output path")
        if is_folder and os.path.commonpath([real_out, real_s]) == real_out:
            raise GGQuantIOError(f"{what} folder {out!r} holds the input {s!r}; choose another output folder")


def unlink_committed(paths: Iterable[str]) -> None:
    """Remove the files of a multi-file output that were already committed when a later one failed
    (a split set is all or nothing); files that are gone already are ignored."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: alive, another user's
    return True


def remove_stale_temporaries(output: Any) -> list[str]:
    """Delete the temporaries of ``output`` whose writing process no longer exists.

    ``OUT.tmp-PID-N`` files (the C++ writers') and ``.OUT.partial-PID`` folders (MLX conversions)
    beside ``output`` are removed when process PID is gone (it was killed by a signal nothing can
    catch); those of live processes, including this one, are left alone.

    Args:
        output: the final output path (file or folder).

    Returns:
        The paths removed.

    Example:
        >>> import os, tempfile
        >>> from ggquant.fileio import remove_stale_temporaries
        >>> d = tempfile.mkdtemp(); out = os.path.join(d, "m.gguf")
        >>> open(out + ".tmp-999999999-0", "w").close()  # a PID no process has
        >>> [os.path.basename(p) for p in remove_stale_temporaries(out)]
        ['m.gguf.tmp-999999999-0']
    """
    out = fs_path(output, "output")
    folder = os.path.dirname(os.path.abspath(out)) or "."
    base = os.path.basename(out.rstrip(os.sep))
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = None
        if name.startswith(base + ".tmp-"):
            m = _TMP_FILE_RE.fullmatch(name[len(base) :])
        elif name.startswith("." + base + ".partial-"):
            m = _PARTIAL_DIR_RE.fullmatch(name[len(base) + 1 :])
        if m is None or _pid_alive(int(m.group(1))):
            continue
        p = os.path.join(folder, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
            removed.append(p)
        except OSError as e:
            if e.errno != errno.ENOENT:  # another process cleaned it up first: fine
                raise _os_error("remove the stale temporary", p, e) from None
    return removed


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does, so the same cleanup runs.

    Only where SIGTERM has its default action (which would end the process without any cleanup)
    and only in the main thread (the only one that can install handlers); a handler the
    application installed itself is left alone.

    Example:
        >>> from ggquant.fileio import sigterm_as_interrupt
        >>> with sigterm_as_interrupt():
        ...     pass
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


__all__ = [
    "PathArg",
    "check_not_an_input",
    "check_regular_file",
    "check_size_unchanged",
    "fs_path",
    "native_path",
    "read_regular_file",
    "read_text_file",
    "remove_stale_temporaries",
    "sigterm_as_interrupt",
    "unlink_committed",
]
