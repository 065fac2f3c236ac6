"""Matching contig names against ``data.exclude`` in bounded time.

Python's regex engine backtracks: the config check (:func:`dnadiff.patterns.regex_hazard`) refuses
the patterns that take exponential time, and matching here is also bounded in time, for the
polynomial blow-ups left (many quantifiers in a row on a very long name)."""

from __future__ import annotations

import re
import signal
import threading

from dnadiff.errors import DnadiffError
from dnadiff.schema import load_schema


def match_seconds() -> float:
    """Seconds the data.exclude patterns may take on one contig name (the schema's
    ``x-match-seconds``)."""
    return float(load_schema()["properties"]["data"]["properties"]["exclude"]["x-match-seconds"])


class _SlowPattern(Exception):
    pass


def exclude_matcher(patterns):
    """``matches(name) -> bool``: whether a contig name matches any of the ``data.exclude``
    ``patterns``, each name's matching bounded to :func:`match_seconds` (a
    :class:`DnadiffError` naming the pattern and the contig beyond). The bound is a timer
    signal, which Python's regex engine checks while it backtracks; it applies in the main
    thread where the platform has one (elsewhere the config check of the patterns stands)."""
    compiled = [(p, re.compile(p)) for p in patterns]
    seconds = match_seconds()
    timed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()

    def matches(name: str) -> bool:
        if not compiled:
            return False
        if not timed or signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # or a timer of others
            return any(c.search(name) for _, c in compiled)
        searching = [True]  # the timer may fire after the search: only raise during it

        def alarm(signum, frame):
            if searching[0]:
                raise _SlowPattern

        hit, i = False, 0
        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            while not hit and i < len(compiled):
                hit = compiled[i][1].search(name) is not None
                i += 1
            searching[0] = False
            return hit
        except _SlowPattern:
            searching[0] = False
            shown = name if len(name) <= 60 else name[:57] + "..."
            slow = compiled[min(i, len(compiled) - 1)][0]
            raise DnadiffError(f"key 'data.exclude': {slow!r} took more than "
                               f"{seconds:g} s to match contig name {shown!r} "
                               f"({len(name)} characters): simplify the pattern") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old if old is not None else signal.SIG_DFL)

    return matches
