"""User-facing errors.

A `UsageError` is bad input the user can fix: scripts print its message as one line and exit 2.
A `RemoteFailure` is an NDIF request that failed (server unreachable, or an exception on the server):
one line and exit 3, plus the server's traceback when it was asked for (`-v`).
Anything else is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""


class RemoteFailure(Exception):
    """A remote request failed: `str()` is one line; `detail` is the server's traceback, if any.

    transient: worth retrying (connection reset, timeout, HTTP 5xx); show_detail: print `detail` too.
    """

    def __init__(self, message: str, detail: str | None = None, transient: bool = False,
                 show_detail: bool = False) -> None:
        super().__init__(message)
        self.detail, self.transient, self.show_detail = detail, transient, show_detail
