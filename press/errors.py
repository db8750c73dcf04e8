"""The one exception type for errors a user can fix.

Raised anywhere in the library for bad input (unreadable audio, wrong layout, unknown model,
corrupt checkpoint); the command line prints its message and exits with code 2 instead of a
traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class PressError(Exception):
    """An error the user can fix: its message says what was wrong and what was expected."""


def optional_module(name: str, extra: str, purpose: str) -> ModuleType:
    """Import a package that only some features need, or say which extra of press-sep installs it.

    press-sep's base install runs inference; training logs, simulated rooms, metrics and corpus
    rendering come with extras (pyproject.toml), so a missing package is a fixable error, not a bug.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        top = name.split(".")[0]
        raise PressError(f'{purpose} needs {top}: pip install "press-sep[{extra}]"') from None
