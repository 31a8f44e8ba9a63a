"""``pytest_autoresearch.isolate``: the candidate runs in a process of its own and returns data;
whatever it does to its own process, the scorer computes the true score or gets a CandidateError.

The attacks run against a small scorer script (:data:`SCORER`) that holds what a frozen fitness
test holds: reference data in memory, a score recorder, a result written on an inherited
descriptor (as a trial's result channel is). Each attack runs twice: with the candidate imported
into the scorer's process (``direct``: the forgery works, so the test can fail) and through the
helper (the forgery changes nothing).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import processes_with

from pytest_autoresearch import isolate
from pytest_autoresearch.isolate import CandidateError, NotIsolated, call, call_each

REPO = Path(__file__).resolve().parents[1]

SCORER = '''
import json, math, os, sys

mode, result_fd = sys.argv[1], int(sys.argv[2])
CLEAN = [1.0, 2.0, 4.0, 8.0]  # the reference: only the scorer's process has it
SIGNAL = [1.5, 2.5, 3.5, 7.5]
HINT = [id(v) + 16 for v in CLEAN]  # where CLEAN's values lie in memory (an attacker could search)


class Recorder:
    score = None


recorder = Recorder()


def report(result):
    os.write(result_fd, json.dumps(result).encode())
    os.close(result_fd)


if mode == "direct":
    import candidate
    out = candidate.predict(SIGNAL, HINT)
else:
    from pytest_autoresearch import isolate
    if mode == "isolated-dumpable":
        isolate._undumpable = lambda: None
    try:
        out = isolate.call("candidate:predict", SIGNAL, HINT, timeout=30)
    except isolate.CandidateError as exc:
        report({"error": exc.kind, "message": str(exc)})
        sys.exit(0)
recorder.score = math.sqrt(sum((a - b) ** 2 for a, b in zip(out, CLEAN)) / len(CLEAN))
report({"score": recorder.score})
'''

HONEST = math.sqrt(sum((a - b) ** 2 for a, b in zip([1.5, 2.5, 3.5, 7.5], [1.0, 2.0, 4.0, 8.0])) / 4)  # 0.5

#: Candidates whose answer is the signal itself (true score 0.5), each forging a perfect score.
ATTACKS = {
    "builtins": """
        import builtins, math
        builtins.sum = lambda *args, **kwargs: 0.0
        math.sqrt = lambda x: 0.0

        def predict(signal, hint):
            return list(signal)
    """,
    "json": """
        import json
        json.dumps = lambda *args, **kwargs: '{"score": 0.0}'
        json.loads = lambda *args, **kwargs: {"score": 0.0}

        def predict(signal, hint):
            return list(signal)
    """,
    "gc": """
        import gc

        def predict(signal, hint):
            for obj in gc.get_objects():
                if type(obj) is list and obj is not signal and len(obj) == len(signal) and all(type(v) is float for v in obj):
                    obj[:] = signal  # the reference, rewritten to this answer
                elif type(obj).__name__ == "Recorder":
                    type(obj).__setattr__ = lambda self, name, value: object.__setattr__(self, name, 0.0)
            return list(signal)
    """,
    "every fd": """
        import os

        def predict(signal, hint):
            for fd in range(256):
                try:
                    os.write(fd, b'{"score": 0.0}')
                except OSError:
                    pass
            os._exit(0)
    """,
}

PROC_MEM = """
    import os, struct, sys

    def predict(signal, hint):
        # under the helper the scorer is the parent; imported into it, this very process
        pid = os.getppid() if "pytest_autoresearch.isolate" in sys.modules else os.getpid()
        try:
            with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
                for address, value in zip(hint, signal):
                    mem.seek(address)
                    mem.write(struct.pack("d", value))
        except OSError as exc:
            print("blocked:", exc)
        return list(signal)
"""


def scorer(tmp_path: Path, candidate: str, mode: str, prefix: tuple[str, ...] = ()) -> dict[str, object]:
    """Run :data:`SCORER` with ``candidate`` as ``candidate.py``; what it reported on its result
    descriptor ({} when nothing, or not one JSON document)."""
    (tmp_path / "candidate.py").write_text(textwrap.dedent(candidate))
    (tmp_path / "scorer.py").write_text(SCORER)
    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        subprocess.run([*prefix, sys.executable, "scorer.py", mode, str(write)], cwd=tmp_path, env=env,
                       pass_fds=(write,), capture_output=True, timeout=60)
        os.close(write)
        write = -1
        raw = b"".join(iter(lambda: os.read(read, 1 << 16), b""))
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    try:
        result = json.loads(raw)
    except ValueError:
        return {}
    return result if isinstance(result, dict) else {}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forging_in_the_candidates_process_changes_nothing(tmp_path: Path, attack: str) -> None:
    direct = scorer(tmp_path, ATTACKS[attack], "direct")
    assert direct == {"score": 0.0}, direct  # imported into the scorer, the candidate forges a perfect score
    isolated = scorer(tmp_path, ATTACKS[attack], "isolated")
    if attack in ("json", "every fd"):  # its forged text is not an answer
        assert isolated["error"] == "answer", isolated
        assert "candidate:predict: its answer is JSON but not an answer" in str(isolated["message"])
    else:  # the true score of what it returned
        assert isolated == {"score": HONEST}, isolated


def _unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without CAP_SYS_PTRACE (as an ordinary user runs), or skip."""
    caps = int(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapEff:")).split()[1], 16)
    if not caps & (1 << 19):  # CAP_SYS_PTRACE
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running with CAP_SYS_PTRACE and no setpriv to drop it")
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-all")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/mem is Linux's")
def test_the_candidate_cannot_write_the_scorers_memory(tmp_path: Path) -> None:
    """Through ``/proc/<scorer>/mem`` the child could rewrite the reference data in the scorer's
    memory; the helper makes the scorer non-dumpable first, which shuts that (and ``ptrace``,
    and ``/proc/<scorer>/fd``) for processes without CAP_SYS_PTRACE."""
    prefix = _unprivileged()
    assert scorer(tmp_path, PROC_MEM, "direct", prefix) == {"score": 0.0}  # the attack works
    yama = Path("/proc/sys/kernel/yama/ptrace_scope")
    if not yama.exists() or yama.read_text().strip() == "0":  # nothing else keeps a child from its parent
        assert scorer(tmp_path, PROC_MEM, "isolated-dumpable", prefix) == {"score": 0.0}
    assert scorer(tmp_path, PROC_MEM, "isolated", prefix) == {"score": HONEST}


# --- the helper's contract, called from this process ------------------------------------------


def module(tmp_path: Path, text: str, name: str = "cand") -> str:
    """Write a candidate module; its path target's prefix (``.../cand.py``)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_arguments_and_answers_are_json_data(tmp_path: Path) -> None:
    where = module(tmp_path, """
        def echo(*args, **kwargs):
            return {"args": args, "kwargs": kwargs}

        class Array:
            def tolist(self):
                return [1.5, 2.5]

        def array():
            return Array()
    """)
    value = call(f"{where}:echo", 1, 2.5, "x", None, True, [1, [2]], (3, 4), key={"nested": [False]})
    assert value == {"args": [1, 2.5, "x", None, True, [1, [2]], [3, 4]], "kwargs": {"key": {"nested": [False]}}}
    assert [type(v) for v in value["args"][:5]] == [int, float, str, type(None), bool]
    assert call(f"{where}:array") == [1.5, 2.5]  # array-likes come back as lists
    assert call_each(f"{where}:echo", [(1,), ((2,), {"k": 3})]) == [{"args": [1], "kwargs": {}}, {"args": [2], "kwargs": {"k": 3}}]
    with pytest.raises(TypeError, match="arguments of .* must be JSON data"):
        call(f"{where}:echo", object())
    with pytest.raises(TypeError, match="each call is a tuple"):
        call_each(f"{where}:echo", [[1]])


def test_imports_resolve_as_in_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child has the test's sys.path and working folder: a module target, a relative path."""
    (tmp_path / "lib").mkdir()
    module(tmp_path / "lib", "def where():\n    import os\n    return os.getcwd()\n", name="isolate_probe_lib")
    module(tmp_path, "from isolate_probe_lib import where\nclass K:\n    @staticmethod\n    def f():\n        return where()\n", name="isolate_probe")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert call("isolate_probe:K.f") == str(tmp_path)
    assert isolate.imported[-1] == str((tmp_path / "isolate_probe.py").resolve())  # for the trial's check of imports
    assert call("isolate_probe.py:K.f") == str(tmp_path)
    assert "isolate_probe" not in sys.modules  # it never ran here


def test_its_output_reaches_the_tests_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = module(tmp_path, """
        import sys
        print("at import")

        def f():
            print('{"ok": [0.0]}')  # looks like an answer: stdout is not the answer's channel
            print("to stderr", file=sys.stderr)
            return 1
    """)
    assert call(f"{where}:f") == 1
    out, err = capsys.readouterr()
    assert out == 'at import\n{"ok": [0.0]}\n' and err == "to stderr\n"


def test_a_candidate_that_raises(tmp_path: Path) -> None:
    where = module(tmp_path, """
        def f(x):
            raise ValueError(f"no good at {x}")
    """)
    with pytest.raises(CandidateError) as caught:
        call(f"{where}:f", 3)
    assert caught.value.kind == "raised"
    assert str(caught.value).startswith(f"{where}:f: it raised ValueError: no good at 3")
    assert f'File "{where}", line 3, in f' in caught.value.traceback
    assert "isolate.py" not in caught.value.traceback.splitlines()[1]  # it starts at the candidate's frame


#: In the child, the answer's descriptor is the one pipe above stderr: a hostile candidate finds it so.
ANSWER_FD = """
import os, stat


def answer_fd():
    return next(fd for fd in range(3, 256) if _is_pipe(fd))


def _is_pipe(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False
"""


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        ("print('{\"ok\": [1]}', flush=True)\n    os._exit(0)", "exited", "it exited without answering"),
        ("os._exit(3)", "exited", "it exited with status 3 without answering"),
        ("import signal\n    os.kill(os.getpid(), signal.SIGKILL)", "exited", "it was killed by SIGKILL"),
        ("os.write(answer_fd(), b'{\"ok\": [1]}')\n    os._exit(4)", "exited", "it exited with status 4"),
        ("raise SystemExit(0)", "raised", "it raised SystemExit: 0"),
        ("return float('nan')", "raised", "not JSON data"),
        ("return 'x' * 2000", "answer", "it answered more than 1000 bytes"),
        ("os.write(answer_fd(), b'{\"ok\": [1], \"ok\": [2]}')\n    os._exit(0)", "answer", "an object has a key twice"),
        ("os.write(answer_fd(), b'{\"ok\": [NaN]}')\n    os._exit(0)", "answer", "NaN is not JSON"),
        ("os.write(answer_fd(), b'{\"ok\": [1, 2]}')\n    os._exit(0)", "answer", "JSON but not an answer"),
        ("os.write(answer_fd(), b'{\"ok\": [1]}')\n    return 2", "answer", "not one JSON document"),
        ("os.write(answer_fd(), b'\\xff')\n    os._exit(0)", "answer", "not one JSON document"),
    ],
    ids=["stdout-then-exit", "exit-status", "killed", "answer-then-status", "sys-exit", "nan", "too-big",
         "duplicate-key", "nan-written", "two-values-for-one-call", "two-answers", "not-utf8"],
)
def test_anything_but_one_json_answer_is_a_candidate_error(tmp_path: Path, body: str, kind: str, message: str) -> None:
    where = module(tmp_path, ANSWER_FD + f"\n\ndef f():\n    {body}\n")
    with pytest.raises(CandidateError) as caught:
        call(f"{where}:f", max_bytes=1000)
    assert caught.value.kind == kind and message in str(caught.value), str(caught.value)


def test_a_candidate_that_never_returns_is_killed_with_its_children(tmp_path: Path, no_leftovers: str) -> None:
    """Its subprocesses, one in a session of its own among them, die with it; a grandchild that
    leaves the tree too (a double fork and a setsid) is the trial's cgroup's to end."""
    where = module(tmp_path, f"""
        import subprocess, sys, time

        def f():
            sleeper = [sys.executable, "-c", "import time; time.sleep(600)", {no_leftovers!r}]
            subprocess.Popen(sleeper)
            subprocess.Popen(sleeper, start_new_session=True)
            while True:
                time.sleep(1)
    """)
    start = time.monotonic()
    with pytest.raises(CandidateError, match="it ran past its timeout of 2 s; its process group was killed") as caught:
        call(f"{where}:f", timeout=2)
    assert caught.value.kind == "timeout" and time.monotonic() - start < 6
    for _ in range(50):
        if not processes_with(no_leftovers):
            break
        time.sleep(0.1)
    assert processes_with(no_leftovers) == []


def test_a_module_already_imported_here_is_not_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module(tmp_path, "def f():\n    return 1\n", name="isolate_probe_imported")
    monkeypatch.syspath_prepend(str(tmp_path))
    import isolate_probe_imported  # noqa: F401  (a gate test that imports the candidate, say)

    try:
        with pytest.raises(NotIsolated, match="'isolate_probe_imported' is already imported in the scorer's process"):
            call("isolate_probe_imported:f")
        with pytest.raises(NotIsolated):
            call(f"{tmp_path / 'isolate_probe_imported.py'}:f")
    finally:
        del sys.modules["isolate_probe_imported"]
    with pytest.raises(ValueError, match="target must be 'module:function'"):
        call("no_function_named")


# --- in the loop: the quickstart example, whose tests call the denoiser through the helper -----

QUICKSTART = REPO / "examples" / "quickstart"
DENOISE = (QUICKSTART / "denoise.py").read_text()
#: Each returns the noisy signal untouched (truly worse than the baseline) and forges a perfect score.
FORGERS = {
    "rewrites the reference in memory": '''
def denoise(xs):
    import signal_data
    signal_data.CLEAN[:] = list(xs)  # the evaluator's reference, made equal to this answer
    return list(xs)
''',
    "forges through gc": '''
def denoise(xs):
    import gc

    class Forged(list):
        def append(self, item):
            super().append(("fitness", 0.0) if item[0] == "fitness" else item)

    for obj in gc.get_objects():
        if type(obj).__name__ == "Fitness":  # the fitness fixture's recorder: its test's properties
            obj._item.user_properties = Forged(obj._item.user_properties)
    return list(xs)
''',
}
OLD_FITNESS_TEST = '''import math

import pytest

from denoise import denoise
from signal_data import CLEAN, NOISY


@pytest.mark.fitness(goal="min")
def test_rmse(fitness):
    out = denoise(NOISY)
    fitness(math.sqrt(sum((a - b) ** 2 for a, b in zip(out, CLEAN)) / len(CLEAN)))
'''


#: Leaves a daemon that is in none of the child's process tree, session or group when it returns.
DAEMON = '''
import subprocess, sys
_SLEEPER = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', sys.argv[1]], start_new_session=True)"
subprocess.run([sys.executable, "-c", _SLEEPER, MARKER])
'''


def _forger(name: str, marker: str = "") -> dict[str, str]:
    daemon = DAEMON.replace("MARKER", repr(marker)) if marker else ""
    return {"description": name, "files": {"denoise.py": DENOISE.split("\ndef denoise(xs):")[0] + daemon + FORGERS[name]}}


def _noisy_rmse() -> float:
    data: dict[str, list[float]] = {}
    exec((QUICKSTART / "signal_data.py").read_text(), data)  # the example's frozen data
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(data["NOISY"], data["CLEAN"])) / len(data["CLEAN"]))


@pytest.mark.parametrize("sandbox", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["plain", "sandbox"])
def test_in_the_loop_a_forger_is_scored_on_what_it_returned(project: object, tmp_path: Path, sandbox: bool, no_leftovers: str) -> None:
    """On the quickstart, whose tests run the denoiser only through the helper, each forger is
    discarded with the true score of the signal it returned (a kept honest gain through the
    helper: tests/test_examples.py). One forger also leaves a daemon the helper cannot see: the
    trial's end takes it.
    (``project`` sets the git identity and clears PYTEST_ADDOPTS.)"""
    from helpers import example_copy, results_of, run_pytest
    from test_attacks_text import sandbox_args

    sandboxed = sandbox_args(sandbox)
    copy = example_copy("quickstart", tmp_path)
    proposals = [_forger(name, marker=no_leftovers if n == 0 else "") for n, name in enumerate(FORGERS)]
    replay = tmp_path / "proposals.jsonl"
    replay.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    result = run_pytest(copy, "--autoresearch", f"--autoresearch-agent=replay:{replay}", "--autoresearch-trials=2", "--autoresearch-tag=t", *sandboxed)
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    rows = results_of(copy)
    assert [(r["status"], r["description"]) for r in rows] == [
        ("baseline", "baseline"), ("discard", "rewrites the reference in memory"), ("discard", "forges through gc")
    ], rows
    assert float(rows[0]["score"]) == pytest.approx(0.237553, abs=1e-6)
    assert float(rows[1]["score"]) == float(rows[2]["score"]) == pytest.approx(_noisy_rmse(), abs=1e-6)


@pytest.mark.slow
def test_without_the_helper_the_same_forgery_reaches_the_score(project: object, tmp_path: Path) -> None:
    """The control: with the fitness test calling ``denoise`` in its own process (as the
    quickstart did before), the forger's perfect score is what the run records."""
    from helpers import GIT_ENV, example_copy, results_of, run_pytest

    copy = example_copy("quickstart", tmp_path)
    (copy / "tests" / "test_fitness.py").write_text(OLD_FITNESS_TEST)
    (copy / "tests" / "conftest.py").unlink()
    (copy / "tests" / "test_denoise.py").unlink()
    subprocess.run(["git", "commit", "-qam", "the fitness test imports the denoiser"], cwd=copy, check=True, env={**os.environ, **GIT_ENV})
    replay = tmp_path / "proposals.jsonl"
    replay.write_text(json.dumps(_forger("rewrites the reference in memory")) + "\n")
    result = run_pytest(copy, "--autoresearch", f"--autoresearch-agent=replay:{replay}", "--autoresearch-trials=1", "--autoresearch-tag=t")
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    rows = results_of(copy)
    assert float(rows[1]["score"]) == 0.0 < _noisy_rmse(), rows


ISOLATED_FITNESS_TEST = '''import pytest

from pytest_autoresearch.isolate import call


@pytest.mark.fitness(goal="min")
def test_error(fitness):
    predictions = call("model:predict_all", list(range(10)), timeout=30)
    fitness(sum((p - (2.5 * x + 3)) ** 2 for x, p in zip(range(10), predictions)) / 10)
'''


def test_a_candidate_imported_from_your_checkout_in_the_child_stops_the_run(project) -> None:
    """The trial's check that surface modules come from its worktree covers what the helper's
    child imported too: here a conftest puts the user's checkout first on sys.path."""
    from helpers import MODEL, PYPROJECT
    from test_setup_errors import _assert_refused, _repo_state

    conftest = f"import sys\nsys.path.insert(0, {str(project.path)!r})\n"
    model = MODEL + "\n\ndef predict_all(xs):\n    return [predict(x) for x in xs]\n"
    project.init({"model.py": model, "tests/test_fitness.py": ISOLATED_FITNESS_TEST, "tests/conftest.py": conftest, "pyproject.toml": PYPROJECT})
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(project, result, before, f"the trial imported {project.path / 'model.py'} from your checkout instead of the trial's worktree*")


def test_output_past_the_limit_is_dropped_not_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = module(tmp_path, """
        import sys

        def f():
            sys.stdout.write("x" * (3 * 2**20))
            return "done"
    """)
    assert call(f"{where}:f") == "done"
    out, _ = capsys.readouterr()
    assert out == "x" * 2**20 + f"\n[isolate: {2 * 2**20} more bytes of the candidate's output dropped]\n"
