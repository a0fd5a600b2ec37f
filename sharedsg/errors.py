"""User-facing errors: the CLI prints their one-line message and exits with code 2. Also the SG
service's dimension check (here, not in :mod:`sharedsg.learn.sg`, so the service can name it
without importing torch)."""


class UserError(Exception):
    """A mistake the user can fix (bad input, a missing file, an unknown experiment)."""


class DimensionMismatch(ValueError):
    """A stream's controller or target dimensions do not fit its SG group."""
