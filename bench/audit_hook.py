"""What the trial's audit hook costs a trial that imports a large library (torch, else numpy).

Every trial pays for the hook (:mod:`pytest_autoresearch.trial_guard`) on every audit event its
process raises, and importing torch raises tens of thousands (imports, opens, compiles, torch's
own frame reads). This runs ``import torch`` and a small forward pass in fresh interpreters with
and without the hook, interleaved so machine noise hits both alike, and reports the paired
difference in CPU time; then, in one more process, the time spent inside the hook itself and the
number of events (the steadier figure on a busy machine).

    .venv/bin/python bench/audit_hook.py [--pairs 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys

LIBRARY = "torch" if importlib.util.find_spec("torch") else "numpy"
WORK = {
    "torch": "import torch\ntorch.nn.Linear(4, 4)(torch.randn(2, 4)).sum()\n",
    "numpy": "import numpy\nnumpy.linalg.inv(numpy.eye(4))\n",
}[LIBRARY]

PAIRED = """
import sys
if sys.argv[1] == "hook":
    from pytest_autoresearch.trial_guard import install
    install({"worktree": "/nonexistent-worktree", "nonce": "x"}, ())
""" + WORK

INSIDE = """
import sys, time
from pytest_autoresearch.trial_guard import Attribution, Watch
hook = Watch(None, Attribution("/nonexistent-worktree", ()), None, "x").hook()
spent, events, clock = [0.0], [0], time.perf_counter
def timed(event, args):
    start = clock()
    hook(event, args)
    spent[0] += clock() - start
    events[0] += 1
sys.addaudithook(timed)
start = time.process_time()
""" + WORK + """
total = time.process_time() - start
print(f"{total * 1000:.0f} {spent[0] * 1000:.1f} {events[0]}")
"""


def cpu_of(code: str, *args: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code, *args], check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args()
    pairs = [(cpu_of(PAIRED, "none"), cpu_of(PAIRED, "hook")) for _ in range(args.pairs)]
    diffs = [hook - bare for bare, hook in pairs]
    print(f"load average {os.getloadavg()[0]:.1f}; {LIBRARY}: {args.pairs} pairs of fresh interpreters")
    print(f"  without the hook: median {statistics.median(b for b, _ in pairs) * 1000:.0f} ms CPU")
    print(f"  with the hook:    median {statistics.median(h for _, h in pairs) * 1000:.0f} ms CPU")
    print(f"  paired difference: median {statistics.median(diffs) * 1000:.0f} ms (min {min(diffs) * 1000:.0f}, max {max(diffs) * 1000:.0f})")
    out = subprocess.run([sys.executable, "-c", INSIDE], check=True, capture_output=True, text=True).stdout.split()
    total, inside, events = float(out[0]), float(out[1]), int(out[2])
    print(f"  inside the hook: {inside:.1f} ms of {total:.0f} ms CPU for {events} audit events ({inside * 1000 / max(events, 1):.1f} us each, the timer's own cost included)")


if __name__ == "__main__":
    main()
