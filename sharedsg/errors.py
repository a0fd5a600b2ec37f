"""User-facing errors: the CLI prints their one-line message and exits with code 2."""


class UserError(Exception):
    """A mistake the user can fix (bad input, a missing file, an unknown experiment)."""


class DimensionMismatch(ValueError):
    """A stream's controller or target dimensions do not fit its SG group."""
