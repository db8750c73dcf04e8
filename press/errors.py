"""The one exception type for errors a user can fix.

Raised anywhere in the library for bad input (unreadable audio, wrong layout, unknown model,
corrupt checkpoint); the command line prints its message and exits with code 2 instead of a
traceback.
"""


class PressError(Exception):
    """An error the user can fix: its message says what was wrong and what was expected."""
