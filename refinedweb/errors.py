"""Errors a user can cause. The CLI prints them as one line and exits 2."""


class UserError(Exception):
    """A mistake in the command, config or inputs: reported as one line, exit code 2."""
