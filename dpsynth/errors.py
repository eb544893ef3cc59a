"""Errors that are the user's to fix.

A UserError reaches the command line as one line on stderr and exit code 2,
never as a stack trace: the person running the job needs to know what to
change, not where in our code the check sits.
"""
from __future__ import annotations

from typing import Callable, Sequence


class UserError(Exception):
    """Bad arguments or bad input discovered before (or instead of) any work."""


class PrivacyBudgetError(UserError):
    """The requested (epsilon, delta) cannot be met by the configured release plan."""


class OptionError(UserError):
    """A UserError about named settings, worded as a template so each layer names them its own way.

    The library names a setting as its parameter (image_size), a command as
    its flag (--image-size): the check lives once, in the library, and the
    command line renders the same message with its flag names.
    """

    def __init__(self, template: str, options: Sequence[str], **values: object) -> None:
        # template: "{options}" stands for the settings, joined with "and", and "{setting}" for one
        # of them by name (a message that names two settings apart); other fields come from values
        self.template, self.options, self.values = template, tuple(options), values
        super().__init__(self.render(lambda option: option))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each setting called name(setting)."""
        return self.template.format(**{**self.values, **{option: name(option) for option in self.options},
                                       "options": join_words([name(option) for option in self.options])})


def join_words(words: Sequence[str], last: str = "and") -> str:
    """'a', 'a and b', 'a, b and c': lists inside one-line messages and help texts read as prose."""
    words = list(words)
    return "".join(words) if len(words) <= 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]
