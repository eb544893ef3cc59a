"""Errors that are the user's to fix.

A UserError reaches the command line as one line on stderr and exit code 2,
never as a stack trace: the person running the job needs to know what to
change, not where in our code the check sits.
"""


class UserError(Exception):
    """Bad arguments or bad input discovered before (or instead of) any work."""


class PrivacyBudgetError(UserError):
    """The requested (epsilon, delta) cannot be met by the configured release plan."""
