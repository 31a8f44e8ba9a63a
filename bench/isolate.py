"""What ``pytest_autoresearch.isolate.call`` costs a fitness test: one child process per call.

Times, interleaved so that machine noise hits them alike: a direct call of a trivial function, a
bare ``python -c pass`` (the floor of any child), ``call`` of the same trivial function (the
helper's overhead per call), and ``call`` of a function that returns its argument, a list of
``--floats`` numbers (what JSON adds for large data). Prints the medians.

    .venv/bin/python bench/isolate.py [--runs 30] [--floats 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_autoresearch.isolate import call  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--floats", type=int, default=1_000_000)
    opts = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="isolate-bench-"))
    (folder / "bench_candidate.py").write_text("def nothing():\n    return 0\n\n\ndef echo(xs):\n    return xs\n")
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    data = [i / 7 for i in range(opts.floats)]
    times: dict[str, list[float]] = {"python -c pass": [], "call(nothing)": [], f"call(echo, {opts.floats} floats)": []}
    for _ in range(opts.runs):
        for name in times:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                if name.startswith("python"):
                    subprocess.run([sys.executable, "-c", "pass"], check=True)
                elif name == "call(nothing)":
                    call("bench_candidate:nothing")
                else:
                    assert call("bench_candidate:echo", data) == data
            times[name].append(time.perf_counter() - start)
    print(f"load average {os.getloadavg()[0]:.2f}; {opts.runs} runs each; medians:")
    for name, values in times.items():
        print(f"  {name:<32} {statistics.median(values) * 1000:8.1f} ms")
    floor, helper = (statistics.median(times[n]) for n in ("python -c pass", "call(nothing)"))
    print(f"  the helper beyond a bare Python start: {(helper - floor) * 1000:.1f} ms per call")


if __name__ == "__main__":
    main()
