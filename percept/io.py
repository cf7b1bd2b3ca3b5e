"""Writing output files all at once: a crash, a full disk or a second process never leaves half a file.

Every file percept writes goes through :func:`atomic_write`: the data goes to a temporary file in
the target's folder (``.NAME.<random>.tmp``), which is flushed, synced and renamed over the target
with :func:`os.replace` only once the block has finished without an error. A reader therefore sees
the old file or the new one, never a mix; two processes writing the same path each leave a complete
file (the last rename wins); and when anything fails the temporary file is removed and the target
is left as it was.

An ``OSError`` while writing (``ENOSPC`` full disk, ``EROFS`` read-only file system, ``EACCES``, a
missing folder) becomes an :class:`~percept.errors.OutputError` naming the file and the cause, which
the command line reports as ``percept: error: ...`` with exit code 2. Keep the ``with`` block to
writing: an ``OSError`` raised inside it is taken as a failure to write the file.

Example:
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(folder, "scores.tsv")) as f:
    ...     _ = f.write("a.png\\t0.25\\n")
    >>> open(os.path.join(folder, "scores.tsv")).read()
    'a.png\\t0.25\\n'
    >>> write_text(os.path.join(folder, "notes.txt"), "done\\n")
    >>> sorted(os.listdir(folder))  # no temporary file left behind
    ['notes.txt', 'scores.tsv']

``-`` and ``/dev/stdout`` (``/dev/stderr``, ``/dev/fd/N``) are the process's own stream, written in place
(:func:`standard_stream`): ``{ echo H; percept score A B -o /dev/stdout; echo F; } > log.txt`` keeps H and F.

The output guard, :func:`check_outputs`: every command (a plugin's too) calls it with every path it will write
(``OUT/*.png`` patterns for a folder's files) and every input it reads, before writing anything::

    check_outputs([out / "scores.csv", out / "*.png"], [manifest, *image_files, weights_file])

Matplotlib figures and pandas tables go through the same path (:func:`save_figure`, :func:`save_csv`)::

    save_figure(fig, "out/scores.png", dpi=110)   # fig.savefig into the temporary file
    save_csv(table, "out/scores.csv", index=False)  # table.to_csv into the temporary file
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import fnmatch
import io
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from percept.errors import OutputError

__all__ = [
    "atomic_write",
    "check_not_an_input",
    "check_outputs",
    "describe_os_error",
    "ensure_output_folder",
    "save_csv",
    "save_figure",
    "standard_stream",
    "write_bytes",
    "write_text",
]

_REASONS = {
    errno_codes.ENOSPC: "no space left on the device",
    errno_codes.EDQUOT: "disk quota exceeded",
    errno_codes.EROFS: "the file system is read-only",
    errno_codes.EACCES: "permission denied",
    errno_codes.EPERM: "operation not permitted",
    errno_codes.ENOENT: "the folder does not exist",
    errno_codes.EISDIR: "it is a folder",
    errno_codes.ENOTDIR: "a part of the path is a file, not a folder",
    errno_codes.EFBIG: "the file is too large",
}


def _reason(exc: OSError) -> str:
    known = _REASONS.get(exc.errno) if exc.errno is not None else None
    return known or exc.strerror or str(exc) or type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """A one-line message for an ``OSError``: the file it concerns, if known, and the system's reason.

    Example:
        >>> import errno
        >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device"))
        'reading or writing a file failed: no space left on the device ([Errno 28])'
    """
    if not exc.errno:
        return f"{type(exc).__name__}: {exc}"
    where = f" '{exc.filename}'" if exc.filename else " a file"
    return f"reading or writing{where} failed: {_reason(exc)} ([Errno {exc.errno}])"


def _output_error(
    path: str | os.PathLike, exc: OSError, what: str = "write output file", note: str = "; nothing was written"
) -> OutputError:
    err = OutputError(f"cannot {what} '{os.fspath(path)}': {_reason(exc)} ([Errno {exc.errno}]){note}")
    err.errno = exc.errno
    return err


def _target(path: str | os.PathLike) -> str:
    """The file a write to ``path`` replaces: a symbolic link is written through, as ``open(path, "w")`` does."""
    text = os.fspath(path)
    return os.path.realpath(text) if os.path.islink(text) else text


def _open_temporary(target: str) -> tuple[str, int]:
    folder = os.path.dirname(target) or "."
    name = os.path.basename(target)
    for _ in range(100):
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            # 0o666 less the umask, as for a file opened with open(path, "w") (mkstemp would give 0o600).
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return temporary, os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno_codes.EEXIST, "no free temporary file name", folder)  # pragma: no cover


class _RawOutput(io.FileIO):
    """The raw stream under an output handle: an ``OSError`` while writing (a full disk) becomes an
    :class:`~percept.errors.OutputError` naming the output file, so that it is told apart from any
    other ``OSError`` raised in the ``with`` block (reading an input, say), which passes unchanged."""

    _write = io.FileIO.write

    def __init__(self, fd: int, output: str | os.PathLike, note: str) -> None:
        super().__init__(fd, "wb", closefd=True)
        self._output, self._note = output, note

    def write(self, data) -> int:
        try:
            return self._write(data)
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise _output_error(self._output, exc, note=self._note) from None


def _open_handle(fd: int, mode: str, kwargs: dict[str, Any], output: str | os.PathLike, note: str) -> IO[Any]:
    try:
        raw = _RawOutput(fd, output, note)
    except BaseException:
        os.close(fd)
        raise
    buffered = io.BufferedWriter(raw)
    return buffered if mode == "wb" else io.TextIOWrapper(buffered, **kwargs)


_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")


def standard_stream(path: str | os.PathLike | None) -> int | None:
    """The file descriptor ``path`` names when it means one of the process's own streams, else ``None``.

    ``-`` and ``/dev/stdout`` are standard output (1), ``/dev/stderr`` is 2, ``/dev/fd/N`` and
    ``/proc/self/fd/N`` are N. Such an output is written in place, never replaced.

    Example:
        >>> standard_stream("-"), standard_stream("/dev/stdout"), standard_stream("/dev/fd/3"), standard_stream("a.txt")
        (1, 1, 3, None)
    """
    if path is None:
        return None
    text = os.fspath(path)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if text in ("-", "/dev/stdout"):
        return 1
    if text == "/dev/stderr":
        return 2
    match = _FD_PATH.match(text)
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def _stream_handle(fd: int, mode: str, kwargs: dict[str, Any], path: str | os.PathLike) -> Iterator[IO[Any]]:
    """Write to the process's stream ``fd`` in place: through ``sys.stdout``/``sys.stderr`` for 1 and 2 (so
    that what Python printed before comes first), through a duplicate of the descriptor otherwise."""
    stream = {1: sys.stdout, 2: sys.stderr}.get(fd)
    if stream is None:
        try:
            handle = _open_handle(os.dup(fd), mode, kwargs, path, "")
        except OSError as exc:
            raise _output_error(path, exc) from None
        with handle:
            yield handle
        return
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a text-only replacement of sys.stdout (io.StringIO)
        if mode == "wb":
            raise OutputError(f"cannot write binary data to '{os.fspath(path)}': the stream takes text only")
        yield stream
        return
    handle = buffer if mode == "wb" else io.TextIOWrapper(buffer, write_through=True, **kwargs)
    try:
        yield handle
    finally:
        handle.flush()
        if handle is not buffer:
            handle.detach()  # leaves the process's stream open


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", *, encoding: str = "utf-8", newline: str | None = None, errors="strict"
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it appears whole or not at all.

    The handle writes to a temporary file in the same folder; when the block ends without an error it
    is flushed, synced and renamed over ``path`` (keeping the old file's permissions). When the block
    raises (anything, ``KeyboardInterrupt`` included) the temporary file is removed and ``path`` is
    left untouched. A device or a pipe is written directly; ``-`` and ``/dev/stdout`` (:func:`standard_stream`)
    are the process's own stream, written in place at its current position, whatever file or pipe it is.

    Args:
        path: the file to write (a symbolic link is written through to its target).
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding, newline, errors: as for :func:`open`, text mode only (``errors="surrogateescape"``
            writes names read from a non-UTF-8 file system back as their original bytes).

    Yields:
        The open file object.

    Raises:
        OutputError: ``path`` is a folder, its folder is missing or read-only, or the disk is full; the
            message names the file and the cause (also an ``OSError``, with its ``errno``). Other
            exceptions of the block pass unchanged.
        ValueError: another ``mode``.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "result.json")
        >>> with atomic_write(path) as f:
        ...     _ = f.write('{"score": 0.25}')
        >>> open(path).read()
        '{"score": 0.25}'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    kwargs: dict[str, Any] = {} if mode == "wb" else {"encoding": encoding, "newline": newline, "errors": errors}
    stream = standard_stream(path)
    if stream is not None:
        with _stream_handle(stream, mode, kwargs, path) as handle:
            yield handle
        return
    target = _target(path)
    if os.path.isdir(target):
        raise OutputError(f"cannot write output file '{os.fspath(path)}': it is a folder; expected a file path")
    if os.path.exists(target) and not os.path.isfile(target):
        try:
            special = _open_handle(os.open(target, os.O_WRONLY), mode, kwargs, path, "")
        except OSError as exc:
            raise _output_error(path, exc) from None
        with special:
            yield special
        return
    try:
        temporary, fd = _open_temporary(target)
    except OSError as exc:
        raise _output_error(path, exc) from None
    committed = False
    try:
        handle = _open_handle(fd, mode, kwargs, path, "; nothing was written")
        with handle:
            yield handle
            handle.flush()
            try:
                os.fsync(handle.fileno())
            except OSError as exc:
                raise _output_error(path, exc) from None
        try:
            with contextlib.suppress(OSError):
                os.chmod(temporary, os.stat(target).st_mode & 0o7777)
            os.replace(temporary, target)
        except OSError as exc:
            raise _output_error(path, exc) from None
        committed = True
    finally:
        if not committed:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> write_text(path, "hello\\n"); open(path).read()
        'hello\\n'
    """
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.bin")
        >>> write_bytes(path, b"\\x00\\x01"); open(path, "rb").read()
        b'\\x00\\x01'
    """
    with atomic_write(path, "wb") as f:
        f.write(data)


def save_figure(figure: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """``figure.savefig(path, ...)`` through :func:`atomic_write`; the format comes from the file's suffix.

    Example:
        >>> save_figure(fig, "out/scores.png", dpi=110)  # doctest: +SKIP
    """
    savefig_kwargs.setdefault("format", Path(path).suffix.lstrip(".").lower() or None)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, **savefig_kwargs)


def save_csv(table: Any, path: str | os.PathLike, **to_csv_kwargs: Any) -> None:
    """``table.to_csv(path, ...)`` (a pandas ``DataFrame``) through :func:`atomic_write`.

    Example:
        >>> save_csv(scores, "out/scores.csv", index=False)  # doctest: +SKIP
    """
    with atomic_write(path, "w", newline="") as f:
        table.to_csv(f, **to_csv_kwargs)


def ensure_output_folder(folder: str | os.PathLike, *, create: bool = True) -> Path:
    """Create ``folder`` (and its parents) if needed and check that files can be written in it.

    With ``create=False`` nothing is made: the folder, or the nearest folder above it that exists, is
    only checked to be a writable folder. Call that before long work whose results go there, so that a
    read-only or unusable folder fails at once rather than after the work.

    Raises:
        OutputError: a file is in the way, a folder on the path is read-only, or no file can be created.

    Example:
        >>> import tempfile, os
        >>> ensure_output_folder(os.path.join(tempfile.mkdtemp(), "a", "b")).is_dir()
        True
    """
    path = Path(folder)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:
            raise OutputError(f"output folder '{path}' is a file; expected a folder or a path that does not exist")
        raise OutputError(f"cannot create output folder '{path}': '{existing}' is a file, not a folder")
    if not create:
        if not os.access(existing, os.W_OK | os.X_OK):
            where = "" if existing == path else f" (to be created in '{existing}')"
            raise OutputError(
                f"cannot write in output folder '{path}'{where}: it is read-only; expected a writable folder"
            )
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(path, exc, "create output folder") from None
    try:
        temporary, fd = _open_temporary(str(path / "probe"))
    except OSError as exc:
        raise _output_error(path, exc, "write in output folder") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temporary)
    return path


def check_not_an_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike], what: str = "output") -> None:
    """Refuse an output path that is one of the input files: :func:`check_outputs` for one output.

    Raises:
        OutputError: naming the input the output would overwrite.

    Example:
        >>> check_not_an_input("scores.tsv", ["a.png", "b.png"])
    """
    check_outputs([output], inputs, what=what)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _expand_inputs(inputs: Iterable[str | os.PathLike | None]) -> list[str]:
    """Input paths as text; a folder stands for the files directly in it."""
    paths: list[str] = []
    for item in inputs:
        if item is None:
            continue
        path = os.fspath(item)
        if os.path.isdir(path):
            with contextlib.suppress(OSError):
                paths.extend(os.path.join(path, name) for name in sorted(os.listdir(path)))
        else:
            paths.append(path)
    return paths


def _refuse(what: str, output: str, path: str) -> OutputError:
    same = os.path.normpath(output) == os.path.normpath(path)
    shown = f"'{output}'" if same else f"'{output}' (the same file as '{path}')"
    return OutputError(
        f"the {what} {shown} is one of the input files; writing it would destroy that input. "
        "Expected an output path other than the inputs"
    )


def check_outputs(
    outputs: Iterable[str | os.PathLike | None], inputs: Iterable[str | os.PathLike | None], *, what: str = "output"
) -> None:
    """The output guard: refuse any output that is one of the inputs, before anything is written.

    An output is an input when both name the same file by any path: the same resolved path (links followed,
    also in the folders above a file not yet written) or the same device and inode (a hard link). A standard
    stream (``-``, ``/dev/stdout``) is compared by the file it is (``>> input.png``).

    Args:
        outputs: output files; a name with ``*``, ``?`` or ``[`` is a pattern for the files a folder will
            receive (``OUT/*.png``): an input in that folder whose name matches it is refused.
            ``None`` entries are skipped.
        inputs: input files (manifests, score files, images, caches read, weights files); a folder stands
            for the files directly in it. ``None`` entries are skipped.
        what: how the message names the output (``"output file (-o)"``, ``"--out folder's file"``).

    Raises:
        OutputError: naming the output and the input it would destroy.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> image = os.path.join(folder, "a.png"); open(image, "wb").close()
        >>> os.link(image, os.path.join(folder, "copy.png"))
        >>> check_outputs([os.path.join(folder, "scores.csv")], [image])  # fine
        >>> check_outputs([os.path.join(folder, "copy.png")], [image])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        percept.errors.OutputError: the output '...copy.png' (the same file as '...a.png') is one of the input...
        >>> check_outputs([os.path.join(folder, "*.png")], [image])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        percept.errors.OutputError: the output '...*.png' (the same file as '...a.png') is one of the input...
    """
    paths = _expand_inputs(inputs)
    by_identity = {key: path for path in paths if (key := _identity(path)) is not None}
    by_real = {os.path.realpath(path): path for path in paths}
    for item in outputs:
        if item is None:
            continue
        output = os.fspath(item)
        stream = standard_stream(output)
        if stream is not None:
            try:
                st = os.fstat(stream)
            except OSError:
                continue
            # Appending (>>) to an input: the stream is that file.
            same = by_identity.get((st.st_dev, st.st_ino))
            if same is not None and os.path.isfile(same):
                raise _refuse(what, output, same)
            continue
        if any(c in os.path.basename(output) for c in "*?["):
            folder, pattern = os.path.realpath(os.path.dirname(output) or "."), os.path.basename(output)
            for path in paths:
                for candidate in (os.path.abspath(path), os.path.realpath(path)):
                    parent = os.path.realpath(os.path.dirname(candidate))
                    if parent == folder and fnmatch.fnmatchcase(os.path.basename(candidate), pattern):
                        raise _refuse(what, output, path)
            continue
        key = _identity(output)
        match = by_identity.get(key) if key is not None else None
        match = match or by_real.get(os.path.realpath(output))
        if match is not None:
            raise _refuse(what, output, match)
