"""Shared plumbing of the Python compatibility programs: command line, check runner, reporting.

Every check prints one line, ``ok   name`` or ``FAIL name: reason``; the program ends with
``<suite>: N passed, N failed`` and exits 1 if anything failed.
"""

import os
import sys
import time
import traceback

# A query that runs for a long time and that Kura cancels promptly, so that cancellation can be
# observed: a count over the cross join of generate_series(1, 1000) with
# generate_series(1, COMPAT_LONG_QUERY_ROWS), 2e9 rows by default. Uncancelled it takes ~30 s on
# Kura's debug build and minutes on PostgreSQL 15. Kura notices a cancel when a batch of the
# streamed (second) side is polled: every ~0.1 s with this shape. The square
# 40000 x 40000 shape used before ran ~7 s and was noticed only after 3-9 s, and the reverse
# shape (the large series first) only at its end: the checks raced the query.
LONG_QUERY_ROWS = int(os.environ.get("COMPAT_LONG_QUERY_ROWS", "2000000"))
LONG_QUERY = (
    f"SELECT count(*) FROM generate_series(1, 1000) AS a, "
    f"generate_series(1, {LONG_QUERY_ROWS}) AS b"
)


def parse_args(usage):
    if len(sys.argv) != 3:
        print(f"usage: {usage} HOST PORT", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1], int(sys.argv[2])


class Checks:
    def __init__(self, suite):
        self.suite = suite
        self.passed = 0
        self.failed = 0
        self.verbose = os.environ.get("COMPAT_VERBOSE") == "1"

    def run(self, name, fn, *args):
        start = time.monotonic()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported, never raised
            self.failed += 1
            reason = f"{type(e).__name__}: {e}".strip().replace("\n", " | ")
            if len(reason) > 400:
                reason = reason[:400] + "..."
            print(f"FAIL {name}: {reason}", flush=True)
            if self.verbose:
                traceback.print_exc()
            return False
        self.passed += 1
        elapsed = time.monotonic() - start
        slow = f" ({elapsed:.1f}s)" if elapsed >= 2 else ""
        print(f"ok   {name}{slow}", flush=True)
        return True

    def finish(self):
        print(f"{self.suite}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(0 if self.failed == 0 else 1)


def eq(actual, expected, what="value"):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def check(cond, message):
    if not cond:
        raise AssertionError(message)
