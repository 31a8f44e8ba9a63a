"""Call the candidate in a process of its own, so that nothing it does can reach the score.

A fitness test that imports the candidate and calls it shares one process with it: the
candidate's code can then walk ``gc`` to the ``fitness`` recorder, patch ``builtins`` or ``json``,
rewrite the reference data in memory, or find the trial's result pipe, and the score it forges
is the one recorded. The loop looks for such reaching (a would-be keep is parked for review),
but code in one process can always reach that process's state. This helper takes the candidate
out of the scorer's process instead::

    from pytest_autoresearch.isolate import CandidateError, call

    @pytest.mark.fitness(goal="min")
    def test_rmse(fitness):
        out = call("denoise:denoise", NOISY, timeout=30)  # a list, decoded from JSON
        fitness(rmse(out, CLEAN))

``call(target, *args, timeout=None, **kwargs)`` starts ``sys.executable`` in a session (and
process group) of its own, with the test's working folder, ``sys.path`` and environment, so
that imports resolve as they do in the test. ``target`` is ``"module:function"`` (a dotted
module and attribute path, ``"pkg.mod:Class.method"``) or ``"path/to/file.py:function"``. The
arguments travel as JSON; the child calls the function and sends back what it returned, as JSON,
on a pipe of its own (not stdout: the candidate may print freely; what it prints is forwarded to
the test's stdout and stderr, so pytest captures it). The scorer decodes the answer with its own
``json`` module, strictly: one JSON document of at most ``max_bytes``, no NaN or Infinity, no
duplicate keys. What comes back is therefore only ``dict``, ``list``, ``str``, ``int``,
``float``, ``bool`` and ``None``, the exact built-in types, never an object of the candidate's
(nothing is unpickled: unpickling runs code in the scorer). Tuples arrive as lists; values with
a ``tolist()`` method (NumPy arrays, torch tensors) are sent as that list, either way.
``call_each(target, [(a1,), (a2, b2)], ...)`` makes several calls in one child, in order.

:class:`CandidateError` is raised, with the candidate's traceback text where there is one, when
the candidate raises (``SystemExit`` included), exits or is killed without answering, exits
with a non-zero status, answers with anything but JSON data, answers more than once or too
much, or runs past ``timeout`` (then its process group is killed). Let it propagate: the test
fails; under ``--autoresearch`` the trial is a crash.

Whatever the candidate does to its own process then changes nothing but the data it returns,
which the frozen test scores like any other answer: patched builtins, ``json`` or ``sys``, objects
found through ``gc``, a forged answer written on every file descriptor, a fake answer printed
before ``os._exit(0)``. Before the first call the scorer's process is made non-dumpable
(``PR_SET_DUMPABLE`` 0, for the rest of the process, on Linux), so that a process of the same
user without ``CAP_SYS_PTRACE`` can neither read nor write its memory nor open its file
descriptors through ``/proc/<pid>/mem``, ``/proc/<pid>/fd`` or ``ptrace`` (core dumps and
debuggers attaching to that process are off too). Root with ``CAP_SYS_PTRACE`` can still do
all of that: run as an ordinary user, or with ``autoresearch_sandbox = true``, which drops
every capability.

What it does not do:

- Stop what any process of your user may do. The candidate can read any file the test can (a
  frozen data module with the reference answers included) and return those answers: keep what
  it must not see in ``holdout=True`` tests (absent from a trial's worktree), or compute it in
  the scorer. A frozen file it writes is the trial's frozen-file check's to catch; a signal it
  sends the scorer ends the test without a score.
- Protect a scorer that imports the candidate anyway. Every test, conftest and plugin of the
  session must call the candidate only through this helper, gates included: if the target's
  module is already imported in the scorer's process, ``call`` raises :class:`NotIsolated`.
- End every process the candidate starts. On a timeout its group and every descendant die
  (one in a session of its own too); one that leaves the tree (a double fork), or is in a
  session of its own when the candidate returns, escapes. Under ``--autoresearch`` the trial's
  cgroup (or the driver, a subreaper) ends those with the trial; outside the loop they run on.
  If the scorer itself is killed (SIGKILL), the child runs on until it returns.

When to use it: whenever the candidate's output is data the test can score (numbers, lists of
them, strings, dicts): a function, a solver, a prompt filled in. Each call starts a Python (with
the candidate's imports, 50 to 100 ms on a busy 2-core machine), so call it once with a batch
(``call_each``), not once per item. JSON costs about 1 to 2 us a number each way; for more than
a few hundred thousand, pass a file's path instead, and have the candidate write its output to a
file whose path it returns, for the scorer to read as data (``numpy.load(path,
allow_pickle=False)``). A candidate whose output is a model the scorer must load and run (a
training script) does not fit: the loop's other defences apply there.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: the child's start is the cost of a call
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

MAX_BYTES = 64 * 2**20  # the most bytes of answer a call accepts, by default
MAX_OUTPUT = 2**20  # the most bytes of each of the candidate's stdout and stderr forwarded to the test's
TRACEBACK_LIMIT = 20_000  # the most characters of the candidate's traceback an error carries (its end)

#: What the child runs: read the call spec from stdin, take the scorer's sys.path, then serve.
_BOOT = (
    "import json, sys\n"
    "spec = json.loads(sys.stdin.buffer.read())\n"
    "sys.path[:] = spec['path']\n"
    "from pytest_autoresearch.isolate import _serve\n"
    "_serve(spec)\n"
)


class CandidateError(Exception):
    """The candidate did not return data: it raised, exited, ran past its timeout, or answered
    with something that is not one JSON document.

    ``kind`` is ``"raised"``, ``"exited"``, ``"timeout"`` or ``"answer"``; ``traceback`` is the
    candidate's traceback text ("" where it has none); ``target`` is what was called.
    """

    def __init__(self, target: str, kind: str, message: str, traceback: str = "") -> None:
        self.target, self.kind, self.traceback = target, kind, traceback
        super().__init__(f"{target}: {message}" + (f"\n\nthe candidate's traceback:\n{traceback}" if traceback else ""))


class NotIsolated(Exception):
    """The target's module is already imported in the scorer's process: its code has run there,
    so calling it in another process would isolate nothing."""


#: The files the children imported their targets from, so that a trial can check that none is
#: your checkout's copy of a surface file (it checks its own modules' files the same way).
imported: list[str] = []


# --- the scorer's side --------------------------------------------------------------------------


def call(target: str, /, *args: Any, timeout: float | None = None, max_bytes: int = MAX_BYTES, **kwargs: Any) -> Any:
    """``target(*args, **kwargs)``, run in a child process; its return value, decoded from JSON.

    ``timeout`` (seconds, None for none of its own) bounds the whole call, the child's start
    included. A keyword argument of the candidate's named ``timeout`` or ``max_bytes``: pass
    it through :func:`call_each`, ``call_each(target, [((), {"timeout": 3})])``.
    """
    return _run(target, [(args, kwargs)], timeout, max_bytes)[0]


def call_each(
    target: str,
    calls: Iterable[tuple[Any, ...] | tuple[Sequence[Any], Mapping[str, Any]]],
    *,
    timeout: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> list[Any]:
    """Several calls of ``target`` in one child, in order; their return values, as a list.

    Each entry of ``calls`` is a tuple of positional arguments, ``(NOISY,)``, or a pair
    ``((args...), {kwargs})`` when it has keyword arguments (so positional ``(a_list, a_dict)``
    is written ``((a_list, a_dict), {})``). ``timeout`` bounds them all; an error in any raises.
    """
    parsed: list[tuple[Sequence[Any], Mapping[str, Any]]] = []
    for entry in calls:
        if not isinstance(entry, tuple):
            raise TypeError(f"call_each: each call is a tuple of arguments, (x,) for one; got {type(entry).__name__}")
        if len(entry) == 2 and isinstance(entry[0], (tuple, list)) and isinstance(entry[1], dict):
            parsed.append((tuple(entry[0]), dict(entry[1])))
        else:
            parsed.append((entry, {}))
    return _run(target, parsed, timeout, max_bytes)


def _parse_target(target: str) -> tuple[str, str]:
    where, sep, name = target.rpartition(":")
    if not sep or not where or not all(part.isidentifier() for part in name.split(".")):
        raise ValueError(f"isolate: target must be 'module:function' or 'path/to/file.py:function', got {target!r}")
    return where, name


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


def _check_isolated(target: str, where: str) -> None:
    """Raise :class:`NotIsolated` when the target's module already runs in this process."""
    if _is_path(where):
        wanted = os.path.realpath(where)
        loaded = [n for n, m in list(sys.modules.items()) if os.path.realpath(str(getattr(m, "__file__", None))) == wanted]
    else:
        loaded = [where] if where in sys.modules else []
    if loaded:
        raise NotIsolated(
            f"isolate: {target}: module {loaded[0]!r} is already imported in the scorer's process, so its code "
            "has run here and could have changed the score; call it only through pytest_autoresearch.isolate, "
            "in every test and conftest of the session (gates included)"
        )


def _plain(value: object) -> Any:
    """JSON's ``default``: array-likes as lists; anything else is not data."""
    if callable(tolist := getattr(value, "tolist", None)):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _undumpable() -> None:
    """No process of this user without CAP_SYS_PTRACE may read or write this one's memory or
    open its descriptors (``/proc/<pid>/mem``, ``/proc/<pid>/fd``, ``ptrace``) from now on."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE; harmless where it fails


def _run(target: str, calls: list[tuple[Sequence[Any], Mapping[str, Any]]], timeout: float | None, max_bytes: int) -> list[Any]:
    import subprocess
    import tempfile

    where, _ = _parse_target(target)
    _check_isolated(target, where)
    _undumpable()
    answer_r, answer_w = os.pipe()
    try:
        spec = {"target": target, "calls": [[list(a), dict(k)] for a, k in calls], "path": list(sys.path), "answer_fd": answer_w}
        try:
            payload = json.dumps(spec, allow_nan=False, default=_plain).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"isolate: the arguments of {target} must be JSON data: {exc}") from None
        with tempfile.TemporaryFile() as stdin:  # a file, not a pipe: the spec is all there before the child starts
            stdin.write(payload)
            stdin.seek(0)
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(answer_w,), start_new_session=True,
            )
        os.close(answer_w)
        answer_w = -1
        try:
            raw = _collect(target, proc, answer_r, timeout, max_bytes)
        finally:
            _end(proc)
        return _decode(target, raw, proc.returncode, len(calls))
    finally:
        os.close(answer_r)
        if answer_w >= 0:
            os.close(answer_w)


class _Forward:
    """The candidate's stdout or stderr, copied to the test's as it comes, up to MAX_OUTPUT bytes."""

    def __init__(self, stream: Any) -> None:
        import codecs

        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.left = MAX_OUTPUT
        self.dropped = 0

    def feed(self, data: bytes, final: bool = False) -> None:
        kept, self.left = data[: max(self.left, 0)], self.left - len(data)
        self.dropped += len(data) - len(kept)
        text = self.decoder.decode(kept, final)
        if final and self.dropped:
            text += f"\n[isolate: {self.dropped} more bytes of the candidate's output dropped]\n"
        if text:
            self.stream.write(text)
            self.stream.flush()


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (its process group stays reserved)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _collect(target: str, proc: subprocess.Popen[bytes], answer_r: int, timeout: float | None, max_bytes: int) -> bytes:
    """Read the answer and forward the output until the child exits; what it answered."""
    import selectors
    import time

    assert proc.stdout is not None and proc.stderr is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    forward = {proc.stdout.fileno(): _Forward(sys.stdout), proc.stderr.fileno(): _Forward(sys.stderr)}
    answer = bytearray()
    selector = selectors.DefaultSelector()
    open_fds = [answer_r, *forward]
    for fd in open_fds:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
        selector.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pidfd = None

    def drain(fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                selector.unregister(fd)
                open_fds.remove(fd)
                return
            if fd == answer_r:
                answer.extend(chunk)
                if len(answer) > max_bytes:
                    raise CandidateError(target, "answer", f"it answered more than {max_bytes} bytes")
            else:
                forward[fd].feed(chunk)

    try:
        exited = False
        while not exited:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise CandidateError(target, "timeout", f"it ran past its timeout of {timeout:g} s; its process group was killed")
            if pidfd is None:
                wait = 0.02 if wait is None else min(wait, 0.02)
            for key, _ in selector.select(wait):
                if key.fd == pidfd:
                    exited = True
                elif key.fd in open_fds:
                    drain(key.fd)
            exited = exited or (pidfd is None and _exited(proc.pid))
        for fd in list(open_fds):  # what it wrote before it exited; a grandchild holding a pipe is not waited for
            drain(fd)
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        for stream in forward.values():
            stream.feed(b"", final=True)
    return bytes(answer)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group, and every descendant it still has, then reap it."""
    import contextlib
    import signal

    from .system.procs import descendants

    if not _exited(proc.pid):
        seen: set[int] = set()
        found: set[int] = set()
        for _ in range(20):  # stop them all first, so that none forks while they are killed
            with contextlib.suppress(OSError):  # no /proc: the group alone
                found = set(descendants(proc.pid)) - seen
            if not found:
                break
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
            seen |= found
        for pid in seen:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(out := dict(pairs)) != len(pairs):
        raise ValueError("an object has a key twice")
    return out


def _decode(target: str, raw: bytes, returncode: int | None, count: int) -> list[Any]:
    """The answer's values, checked strictly, or the :class:`CandidateError` it stands for."""
    import signal

    if returncode:
        how = f"was killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exited with status {returncode}"
        raise CandidateError(target, "exited", f"it {how}" + ("" if raw else " without answering"))
    if not raw:
        raise CandidateError(target, "exited", "it exited without answering (os._exit, or its process was ended)")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise CandidateError(target, "answer", f"its answer is not one JSON document: {str(exc)[:200]}") from None
    if type(doc) is dict and sorted(doc) == ["file", "ok"] and type(doc["ok"]) is list and len(doc["ok"]) == count and type(doc["file"]) is str:
        imported.append(doc["file"])
        return doc["ok"]
    if type(doc) is dict and sorted(doc) == ["error", "traceback"] and type(doc["error"]) is type(doc["traceback"]) is str:
        raise CandidateError(target, "raised", doc["error"][:500], doc["traceback"][-TRACEBACK_LIMIT:])
    raise CandidateError(target, "answer", "its answer is JSON but not an answer")


# --- the child's side ---------------------------------------------------------------------------


def _resolve(target: str) -> tuple[Any, Any]:
    """The target's module and the function in it."""
    import importlib
    import importlib.util

    where, name = _parse_target(target)
    if _is_path(where):
        path = os.path.abspath(where)
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        module_name = os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    found: Any = module
    for part in name.split("."):
        found = getattr(found, part)
    return module, found


def _serve(spec: dict[str, Any]) -> None:
    """Run the calls and write the answer, once, on the answer descriptor; then exit at once
    (the candidate's atexit handlers and threads do not run on)."""
    fd = int(spec["answer_fd"])
    os.set_inheritable(fd, False)  # the candidate's own subprocesses do not get it
    os.dup2(null := os.open(os.devnull, os.O_RDONLY), 0)
    os.close(null)
    try:
        module, function = _resolve(spec["target"])
        values = []
        for args, kwargs in spec["calls"]:
            values.append(function(*args, **kwargs))
        try:
            frame = json.dumps({"ok": values, "file": os.path.realpath(str(module.__file__))}, allow_nan=False, default=_plain)
        except (TypeError, ValueError) as exc:
            frame = json.dumps({"error": f"it returned something that is not JSON data: {exc}", "traceback": ""})
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are answers too
        import traceback

        try:  # from the candidate's own frames on: this function's is left out
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None))
            what = traceback.format_exception_only(type(exc), exc)[-1].strip()
        except Exception:
            text, what = "", f"{type(exc).__name__} (its text could not be formatted)"
        frame = json.dumps({"error": f"it raised {what}", "traceback": text})
    view = memoryview(frame.encode())
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a stream the candidate replaced or closed
            pass
    os._exit(0)
