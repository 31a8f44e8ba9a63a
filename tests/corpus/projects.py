"""The acceptance corpus: real projects from PyPI at pinned versions, and what a user adds to each.

Each entry names the sdist (pinned by version and SHA-256), the case it stands for, the project's
own tests, and exactly what the README tells a user to add: a fitness test (the file beside this
one, ``corpus/<name>/fitness.py``) and a few ini lines (the surface, ``pythonpath`` for a src
layout, ``autoresearch_carry`` for a generated file git ignores). ``keep`` is a change that
improves the score and passes the project's own suite; ``breaks`` improves the score too but
fails one of the project's own tests. Both are text replacements in the unpacked sdist, so that a
changed pin fails loudly ("not found in ...") instead of testing something else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (file, old text, new text): one replacement, which must match exactly once.
Edit = tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class Corpus:
    name: str  # the PyPI name
    version: str
    sha256: str  # of the sdist pip fetches
    covers: str  # the real case it stands for
    tests_dir: str  # where the fitness test goes (beside the project's own tests)
    own_tests: tuple[str, ...]  # the project's own tests: pytest's arguments (empty: its config's)
    config: tuple[str, str, str]  # (file, section header, the user's lines under it)
    keep: tuple[Edit, ...]
    breaks: tuple[Edit, ...]
    src: bool = False  # a src layout: plain runs of the untouched project get pythonpath=src, as an install would
    convert: tuple[Edit, ...] = ()  # applied to the project itself before its first commit
    generated: tuple[str, ...] = ()  # files the build made that git ignores (present in the checkout)
    terminated: tuple[str, ...] = ()  # own tests whose multiprocessing workers get SIGTERM (a case of their own)

    @property
    def fitness_source(self) -> str:
        return (HERE / self.name / "fitness.py").read_text(encoding="utf-8")

    @property
    def goal(self) -> str:
        """The fitness test's goal, as its marker says."""
        return "max" if 'goal="max"' in self.fitness_source else "min"

    @property
    def fitness_path(self) -> str:
        return f"{self.tests_dir}/test_autoresearch_fitness.py"

    @property
    def surface(self) -> tuple[str, ...]:
        """The files ``autoresearch_mutable`` names in the user's lines (a TOML list or ini words)."""
        line = next(line for line in self.config[2].splitlines() if line.startswith("autoresearch_mutable"))
        value = line.split("=", 1)[1]
        return tuple(word.strip(' "') for word in value.strip(" []").replace(",", " ").split())


PROJECTS = (
    Corpus(
        name="hepunits",
        version="2.3.5",
        sha256="9434cd2d6a722c949e9e9e22bd0b59587f69025bd37356e5c70635f1b37036d8",
        covers="src layout; filterwarnings = error with --strict-config --strict-markers; "
        "hatch-vcs writes src/hepunits/_version.py, which git ignores",
        tests_dir="tests",
        own_tests=(),
        src=True,
        generated=("src/hepunits/_version.py",),
        config=(
            "pyproject.toml",
            "[tool.pytest.ini_options]",
            'pythonpath = ["src"]\n'
            'autoresearch_mutable = ["src/hepunits/constants/constants.py", "src/hepunits/units/units.py"]\n'
            'autoresearch_carry = ["src/hepunits/_version.py"]\n',
        ),
        keep=(("src/hepunits/constants/constants.py", "h_Planck = 6.62607015e-34", "h_Planck = 6.6255e-34"),),
        breaks=(
            ("src/hepunits/constants/constants.py", "h_Planck = 6.62607015e-34", "h_Planck = 6.6255e-34"),
            ("src/hepunits/constants/constants.py", "Avogadro = 6.02214076e23", "Avogadro = 6.022e23"),
        ),
    ),
    Corpus(
        name="toolz",
        version="1.0.0",
        sha256="2c86e3d9a04798ac556793bced838816296a2f085017664e4995cb40a1047a02",
        covers="tests inside the package (toolz/tests); configuration only in setup.cfg; "
        "a surface whose only knob is a function's default (fold's chunksize)",
        tests_dir="toolz/tests",
        own_tests=(),
        config=(
            "setup.cfg",
            "[tool:pytest]",
            "pythonpath = .\nautoresearch_mutable = toolz/sandbox/parallel.py toolz/itertoolz.py\n",
        ),
        keep=(("toolz/sandbox/parallel.py", "map=map, chunksize=128, combine=None):", "map=map, chunksize=512, combine=None):"),),
        breaks=(
            ("toolz/sandbox/parallel.py", "map=map, chunksize=128, combine=None):", "map=map, chunksize=512, combine=None):"),
            ("toolz/itertoolz.py", "    seq = iter(seq)\n    next(seq)\n    return next(seq)\n", "    return next(iter(seq))\n"),
        ),
    ),
    Corpus(
        name="cachetools",
        version="5.5.2",
        sha256="1a661caa9175d26759571b2e19580f9d6393969e5dfca11fdb1f947a23e640d4",
        covers="src layout; configuration only in tox.ini (a [pytest] section beside tox's own); "
        "the decorators' default maxsize tuned for a workload",
        tests_dir="tests",
        own_tests=(),
        src=True,
        config=("tox.ini", "[pytest]", "pythonpath = src\nautoresearch_mutable = src/cachetools/func.py\n"),
        keep=(("src/cachetools/func.py", "def lru_cache(maxsize=128, typed=False):", "def lru_cache(maxsize=256, typed=False):"),),
        breaks=(
            ("src/cachetools/func.py", "def lru_cache(maxsize=128, typed=False):", "def lru_cache(maxsize=256, typed=False):"),
            # the decorator used bare keeps 128 (test_func's test_decorator_user_function says so)
            ("src/cachetools/func.py", "return _cache(LRUCache(128), 128, typed)(maxsize)", "return _cache(LRUCache(256), 256, typed)(maxsize)"),
        ),
    ),
    Corpus(
        name="exceptiongroup",
        version="1.3.0",
        sha256="b241f5885f560bc56a59ee63ca4c6a8bfa46ae4ad651af316d4e81817bb9fd88",
        covers="pytest 9's native [tool.pytest] table (converted from the release's [tool.pytest.ini_options]) "
        "with --strict-config --strict-markers; src layout; a score computed in a process of its own",
        tests_dir="tests",
        own_tests=(),
        src=True,
        convert=(
            (
                "pyproject.toml",
                '[tool.pytest.ini_options]\naddopts = "-rsfE --tb=short --strict-config --strict-markers"\n',
                '[tool.pytest]\naddopts = ["-rsfE", "--tb=short", "--strict-config", "--strict-markers"]\n',
            ),
        ),
        config=(
            "pyproject.toml",
            "[tool.pytest]",
            'pythonpath = ["src"]\n'
            'autoresearch_mutable = ["src/exceptiongroup/_formatting.py", "src/exceptiongroup/_catch.py"]\n',
        ),
        keep=(("src/exceptiongroup/_formatting.py", "_CASE_COST = 1\n", "_CASE_COST = 0\n"),),
        breaks=(
            ("src/exceptiongroup/_formatting.py", "_CASE_COST = 1\n", "_CASE_COST = 0\n"),
            ("src/exceptiongroup/_catch.py", '        raise TypeError("the argument must be a mapping")\n', "        pass\n"),
        ),
    ),
    Corpus(
        name="pebble",
        version="5.1.1",
        sha256="4e91a5b8e48b30b26eaa5391ba2cf65fbb3594fba17b88bc0b3351cf849d0305",
        covers="multiprocessing in the tests (forked workers that pebble stops with SIGTERM); "
        "configuration only in setup.cfg; a subset of a slow suite named in autoresearch_tests",
        tests_dir="test",
        own_tests=("test/test_concurrent_process_fork.py",),
        # a worker that dies holding the channel's lock: the pool terminates the others with SIGTERM
        terminated=("test/test_process_pool_fork.py::TestProcessPoolDeadlockOnResult",),
        config=(
            "setup.cfg",
            "[tool:pytest]",
            "pythonpath = .\n"
            "autoresearch_mutable = pebble/common/types.py\n"
            "autoresearch_tests = test/test_concurrent_process_fork.py test/test_autoresearch_fitness.py\n"
            "autoresearch_timeout = 30\n",
        ),
        keep=(("pebble/common/types.py", "    sleep_unit: float = 0.1\n", "    sleep_unit: float = 0.05\n"),),
        breaks=(
            ("pebble/common/types.py", "    sleep_unit: float = 0.1\n", "    sleep_unit: float = 0.05\n"),
            ("pebble/common/types.py", "    FAILURE = 1\n", "    FAILURE = 0\n"),
        ),
    ),
)
