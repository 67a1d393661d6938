"""A run cut short: take the local stack as `chaoscert run` does, inject one
fault, say so, then end the way the test asks.

    python -m tests.stack.interrupt_harness TOPOLOGY STATE_DIR KIND TARGET HOW

HOW is ``hold`` (inject nothing, hold the stack until a signal), ``wait``
(inject, then sleep until a signal or SIGKILL ends the process), ``raise``
(an exception escapes, as from a failed step, once a line or the end of input
arrives on stdin, so the test sees the fault live first) or ``none`` (inject nothing:
only take the stack, which heals what a killed run left, and give it back).
Nothing here heals on purpose: what heals is what heals a real run, the
registry's signal handlers and its exit hook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from chaoscert.platforms.base import FaultRegistry
from chaoscert.platforms.local.platform import LocalPlatform

WAIT_BOUND_S = 300


def main(argv: list[str]) -> int:
    topology, state_dir, kind, target, how = argv
    platform = LocalPlatform(Path(topology), Path(state_dir))
    for line in platform.take():
        print(f"HEALED {line}", flush=True)
    try:
        if how == "none":
            return 0
        if how == "hold":
            print("HELD", flush=True)
            time.sleep(WAIT_BOUND_S)
            return 1
        platform.inject(kind, target)
        print("INJECTED", flush=True)
        if how == "raise":
            sys.stdin.readline()
            raise RuntimeError("a step failed while the fault was live")
        time.sleep(WAIT_BOUND_S)
        return 1
    except KeyboardInterrupt:
        return 128 + (FaultRegistry.received_signal or 2)
    finally:
        platform.release()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
