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
