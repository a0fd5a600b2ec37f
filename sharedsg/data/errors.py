"""The one exception every data loader raises for bad input."""

from __future__ import annotations

from sharedsg.errors import UserError


class DataError(UserError, ValueError):
    """A problem with the user's data files.

    The message is one line that names the file (and the row or column where it
    applies) and says how to fix it; the CLI prints it and exits with status 2.
    """
