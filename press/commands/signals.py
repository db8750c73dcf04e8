"""SIGTERM and Ctrl-C end a command the way an error does: cleanly, with one line.

Python's default SIGTERM kills the process where it stands, so the temporary files that make every
write atomic (`press.io.files`) stay behind; its default Ctrl-C unwinds, but prints a traceback.
Inside `stop_cleanly()` both signals raise `Interrupted` instead: `with` blocks and `finally`
clauses run (a half-written output or checkpoint is removed, a server's session folder deleted)
and the command prints one line and exits with the shell's code for that signal (128 + its number).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

from press.errors import PressError


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal. A KeyboardInterrupt, so that code which already cleans up after
    Ctrl-C (servers, progress bars) does the same after SIGTERM."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame) -> None:
    # a second signal while cleaning up ends the process the default way
    for s in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(s) is _raise:
            signal.signal(s, signal.SIG_DFL)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_cleanly() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise `Interrupted` (from the main thread only: Python
    delivers signals there; elsewhere the block runs with the handlers as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a signal the parent chose to ignore (a background job's SIGINT, `nohup`) stays ignored
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGINT)
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def ctrl_c_ends_input() -> Iterator[Callable[[], bool]]:
    """Within the block, a first Ctrl-C does not stop the command: it ends the input (a recording
    from a microphone stops on Ctrl-C, and what was recorded is finished and kept). The yielded
    function says whether it came; a second Ctrl-C stops the command as usual. Main thread only."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield lambda: False
        return
    asked = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def end(signum: int, frame) -> None:
        asked.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, end)
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def run_cleanly(prog: str, run: Callable[[], int]) -> int:
    """Run a command's body the way every PRESS command ends: a PressError is one line and exit 2,
    SIGTERM or Ctrl-C one line and 128 + the signal's number (`prog` starts each line)."""
    try:
        with stop_cleanly():
            return int(run() or 0)
    except PressError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"{prog}: {stop}; nothing partial was kept", file=sys.stderr)
        return stop.exit_code
