"""Frozen: the build harness. It reads build.toml, checks every setting against its range, and
times a clean gcc build of the generated C project in a fresh folder.

What is timed: precompiling the header (if ``pch``), compiling every translation unit (with
``jobs`` compilers at once) and linking.
What is not: writing the sources, and one tiny warm-up compile that pages gcc in.
An evaluation makes REPEATS such builds from scratch and keeps the fastest: other work on the
machine can only slow a build down, so the minimum is the steadiest estimate of its cost.
"""

from __future__ import annotations

import dataclasses
import os
import re
import resource
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

from cproject import write_project

CONFIG = Path(__file__).resolve().parent.parent / "build.toml"  # the mutable file
REPEATS = 3  # clean builds per evaluation; the fastest counts, since a busy machine only adds time

# name: (lowest, highest, default). Anything else in build.toml is ignored.
SETTINGS = {
    "jobs": (1, 64, 1),  # compilers run at once; more than this machine's CPUs count as its CPUs
    "opt_level": (0, 3, 2),  # -O0 .. -O3
    "debug_info": (0, 3, 2),  # -g0 .. -g3
    "unity_chunks": (0, 64, 0),  # 0: one unit per source file; N: the sources grouped into N units
    "fast_math": (0, 1, 0),  # 1: -ffast-math
    "pch": (0, 1, 0),  # 1: precompile common.h once (timed) so each unit loads it instead of parsing it
}


class ConfigError(Exception):
    """build.toml names a value the harness does not accept."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _parse(text: str) -> dict[str, object]:
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"build.toml is not valid TOML: {e}") from None
    out: dict[str, object] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z_][\w-]*)\s*=\s*([-+]?\d+)", line)
            if not m:
                raise ConfigError(f"build.toml: cannot read {line!r} (write `name = integer`)")
            out[m.group(1)] = int(m.group(2))
    return out


def load_config(path: Path = CONFIG) -> dict[str, int]:
    """The settings of ``path``, every known one checked; defaults fill the missing ones."""
    raw = _parse(path.read_text(encoding="utf-8"))
    config = {}
    for name, (low, high, default) in SETTINGS.items():
        value = raw.get(name, default)
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(f"build.toml: {name} = {value!r} is out of range: it must be an integer from {low} to {high}")
        config[name] = value
    return config


def config_problem(path: Path = CONFIG) -> str | None:
    """Why ``path`` is not accepted, or None."""
    try:
        load_config(path)
    except ConfigError as e:
        return str(e)
    return None


@dataclasses.dataclass
class Build:
    seconds: float  # wall time of the compile and link steps
    cpu_seconds: float  # the compilers' and linker's CPU time over the same steps
    program: Path
    units: int  # translation units compiled
    jobs: int  # compilers actually run at once
    times: list[float] = dataclasses.field(default_factory=list)  # every repeat's wall time


def gcc() -> str | None:
    return shutil.which("gcc")


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "CCACHE_DISABLE": "1", "LC_ALL": "C"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")


def build(config: dict[str, int], folder: Path) -> Build:
    """A clean build of the project into ``folder`` (which should be new and empty)."""
    cc = gcc()
    if cc is None:
        raise RuntimeError("gcc is not on PATH")
    src = folder / "src"
    sources = write_project(src)
    jobs = min(config["jobs"], cpu_count())
    units = sources
    if config["unity_chunks"]:
        n = min(config["unity_chunks"], len(sources))
        units = []
        for k in range(n):
            unit = src / f"unity{k:02d}.c"
            unit.write_text("".join(f'#include "{s.name}"\n' for s in sources[k::n]))
            units.append(unit)
    flags = ["-std=c11", f"-O{config['opt_level']}", f"-g{config['debug_info']}"]
    flags += ["-ffast-math"] * config["fast_math"]

    warm = folder / "warm.c"
    warm.write_text("int warm(int x) { return x * 3; }\n")
    _run([cc, "-O2", "-c", str(warm), "-o", str(folder / "warm.o")], folder)

    objects = [folder / f"{u.stem}.o" for u in units]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if config["pch"]:
        _run([cc, *flags, "-x", "c-header", "common.h", "-o", "common.h.gch"], src)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda u, o: _run([cc, *flags, "-c", str(u), "-o", str(o)], src), units, objects))
    program = folder / "program"
    _run([cc, *flags, *map(str, objects), "-o", str(program), "-lm"], folder)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Build(seconds, cpu, program, len(units), jobs)


def best_of(config: dict[str, int], folder: Path, repeats: int = REPEATS) -> Build:
    """``repeats`` clean builds, each in a new folder of its own: the fastest, with all the times."""
    builds = [build(config, folder / f"build{i}") for i in range(repeats)]
    fastest = min(builds, key=lambda b: b.seconds)
    return dataclasses.replace(fastest, times=[b.seconds for b in builds])
