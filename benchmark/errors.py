"""User-facing errors.

Anything caused by the user's input (a suite file, a data directory, a checkpoint) raises
:class:`BenchmarkError`. The CLI prints its message as one line and exits with status 2, so a
researcher sees *what* is wrong and *where*, never a traceback.
"""


class BenchmarkError(Exception):
    """A problem with user input, reported as a single line naming the file/field at fault."""

    exit_code = 2


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by the CLI's handler so that cleanup runs (worker
    processes stopped, temporaries removed) and the run exits with one line, status 143."""


class WriteError(BenchmarkError, OSError):
    """A file or folder could not be written (disk full, read-only, no permission): one line
    naming the path and the reason. Also an :class:`OSError` with the cause's ``errno``, so
    code that tolerates failed writes (best-effort sidecars) still catches it."""

    def __init__(self, path: object, cause: OSError) -> None:
        OSError.__init__(self, cause.errno, cause.strerror or str(cause), str(path))
        reason = cause.strerror or " ".join(str(cause).split()) or type(cause).__name__
        self.message = f"{path}: cannot write ({reason})"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:  # crosses process boundaries intact
        return _rebuild_write_error, (self.message, self.errno, self.strerror, self.filename)


def _rebuild_write_error(
    message: str, code: int | None, reason: str | None, filename: str | None
) -> WriteError:
    error = WriteError(filename, OSError(code, reason))
    error.message = message
    return error
