"""Errors a user can cause (one line, exit 2), and runs stopped by a failure that a re-run resumes (one
line, exit 1)."""


class UserError(Exception):
    """A mistake in the command, config or inputs: reported as one line, exit code 2."""


class RerunNeeded(Exception):
    """A run stopped by something outside the command (a task out of retries, a lost cluster): finished
    work is kept, and running the same command again resumes it. One line, exit code 1."""
