"""The one exception type of the command line."""


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""
