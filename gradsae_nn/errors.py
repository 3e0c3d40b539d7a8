"""User-facing errors.

A `UsageError` is bad input the user can fix: scripts print its message as one line and exit 2.
Anything else is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""
