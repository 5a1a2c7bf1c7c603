"""Errors a user can cause: the CLI prints them as one paragraph and exits with status 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, bad path, missing data or weights, bad --set)."""
