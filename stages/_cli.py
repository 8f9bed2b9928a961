"""The exit-code and summary convention every stage command shares (`python -m stages.<name>` and
`python -m flows.<name>` alike).

0: the summary as one JSON line on stdout. 2: bad flags (argparse), bad params or bad input (a
ValueError, whose message names the file and the problem: `error: <message>` on stderr). Anything
else is a bug and exits 1 with a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def report(call: Callable[[], dict[str, Any]]) -> int:
    """Run `call` (parse the params, run the stage) and print its summary; the exit code."""
    try:
        summary = call()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0
