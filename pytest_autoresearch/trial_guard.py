"""What the candidate's own code reaches for inside its trial, seen at run time by an audit hook.

Code in one process can always reach that process's state, so a trial's score can be forged
from inside it (:mod:`.trial_state` detects the forgeries it can). This module watches for the
*reaching*: :func:`install`, called by the plugin's entry point in a trial before any conftest or
candidate code runs, adds a ``sys.addaudithook`` hook that notices ``gc``'s object walks,
``ctypes``, frames (``sys._getframe``, a traceback's or generator's frame), tracing and audit
hooks, code objects built or swapped, the harness's functions read for their code or globals,
``/proc/self`` (memory, descriptors), ``.git`` and the run folder, integer file descriptors
opened, and git run as a subprocess.

Only the candidate's own code counts (:class:`Attribution`): the innermost frame that is neither
dynamic (``<string>``, ``<frozen ...>``) nor a standard-library trampoline (``threading``,
``functools``, ``ctypes``, ``inspect``, ``subprocess``, ...) must be a file the trial's commit
does not freeze (the mutable surface, or a file added to the worktree) or a Python file the
candidate's code wrote while the trial ran. Libraries (torch calls ``ctypes`` and walks frames) and the rest of the
standard library (``logging``, ``typing`` and ``collections`` read frames for their own ends)
end the walk: no alarm.

Each alarm is written at once, from the hook, before the audited operation goes on, as one JSON
line to a pipe of its own that the driver reads (a forger cannot take back what it already
sent); the session's end writes a closing line with the trial's nonce, so a trial that ends
with a result but without it cut the channel.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: What the trial's reports are written with, taken before any candidate code runs.
raw_write: Callable[[int, bytes], int] = os.write
encode_json: Callable[..., str] = json.JSONEncoder(ensure_ascii=True).encode
_getframe = sys._getframe
_get_ident = _thread.get_ident

ALARM_LIMIT = 200  # distinct alarms sent per trial; past it, one more says so

_WALKS = {"gc.get_objects", "gc.get_referrers", "gc.get_referents"}
_FRAMES = {"sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile", "sys.addaudithook"}
_CTYPES = {
    "ctypes.addressof", "ctypes.call_function", "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.create_string_buffer",
    "ctypes.create_unicode_buffer", "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.get_errno",
    "ctypes.set_errno", "ctypes.string_at", "ctypes.wstring_at", "ctypes.PyObj_FromPtr", "ctypes.callproc",
}
_BUILT = {"code.__new__", "function.__new__"}
_PROCS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
_PATHS = {"open", "os.listdir", "os.scandir", "os.symlink"}
WATCHED = frozenset(_WALKS | _FRAMES | _CTYPES | _BUILT | _PROCS | _PATHS | {"object.__setattr__", "object.__getattr__", "compile"})

_ATTRS = frozenset({"object.__getattr__", "object.__setattr__"})
_OWN = frozenset(os.path.join(os.path.dirname(__file__), name) for name in ("trial_state.py", "trial_plugin.py", "trial_guard.py"))
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_HARNESS_ATTRS = frozenset({"__code__", "__globals__", "__defaults__", "__kwdefaults__", "__closure__", "__dict__", "__class__", "__bases__"})
_HARNESS = ("pytest_autoresearch", "_pytest", "pytest", "pluggy")
_PROC_SELF = re.compile(r"^/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/(?:mem|fd|fdinfo|maps|smaps|pagemap|environ|map_files)\b")
_GIT = re.compile(r"(?:^|[\s/'\"])git(?:$|[\s'\"])")

#: Standard-library modules that call on a caller's behalf: the walk goes on past them to
#: whoever called them. Every other standard-library frame ends it (its own use, not the candidate's).
TRAMPOLINES = frozenset({
    "threading.py", "functools.py", "ctypes", "inspect.py", "subprocess.py", "os.py", "pathlib.py", "io.py",
    "_pyio.py", "bdb.py", "pdb.py", "contextlib.py", "concurrent", "asyncio", "runpy.py", "shutil.py", "codecs.py",
    "operator.py", "genericpath.py", "posixpath.py", "weakref.py", "_threading_local.py", "fileinput.py", "glob.py",
})

_CANDIDATE, _SKIP, _OTHER = 1, 2, 3


def _stdlib_dirs() -> tuple[str, ...]:
    here = os.path.dirname(os.path.realpath(os.__file__))
    return tuple({here, os.path.dirname(os.__file__)})


def _library_dirs() -> tuple[str, ...]:
    """Where installed libraries live (site-packages): their files need no ``realpath``."""
    paths = sysconfig.get_paths()
    return tuple({os.path.join(paths[key], "") for key in ("purelib", "platlib") if key in paths})


class Attribution:
    """Which code is the candidate's: files under the trial's worktree that its commit does not
    freeze (the surface, files added), and Python files the candidate's code wrote anywhere while
    the trial ran (:meth:`written`; not files a library generates, such as torch's compiled
    kernels: they are the library's)."""

    def __init__(self, root: str | None, frozen: Iterable[str], files: Iterable[str] = ()) -> None:
        self.root = os.path.realpath(root) + os.sep if root else None
        self.frozen = frozenset(frozen)
        self.files = frozenset(os.path.realpath(f) for f in files)  # the surface, as the driver names it
        self.stdlib = _stdlib_dirs()
        self.libraries = _library_dirs()
        self.linked = False  # once candidate code makes a symlink, every file is resolved first
        self.kinds: dict[str, int] = {}

    def kind(self, filename: str) -> int:
        known = self.kinds.get(filename)
        if known is None:
            known = self.kinds[filename] = self._classify(filename)
        return known

    def _classify(self, filename: str) -> int:
        if not filename or filename[0] == "<" or not os.path.isabs(filename):
            return _SKIP  # dynamic code, or code compiled under a made-up name: its caller answers
        if not self.linked and filename.startswith(self.libraries) and not (self.root and filename.startswith(self.root)):
            return _OTHER  # most frames a trial walks are a library's: no realpath (a dozen syscalls)
        real = os.path.realpath(filename)
        if real in self.files:
            return _CANDIDATE
        if self.root is not None and real.startswith(self.root):
            return _OTHER if real[len(self.root):] in self.frozen else _CANDIDATE
        for base in self.stdlib:
            if real.startswith(base + os.sep):
                rel = real[len(base) + 1:]
                if rel.startswith(("site-packages", "dist-packages")):
                    break
                return _SKIP if rel.split(os.sep, 1)[0] in TRAMPOLINES else _OTHER
        return _OTHER

    def is_candidate(self, filename: str) -> bool:
        return self.kind(filename) == _CANDIDATE

    def spoofed(self, filename: object) -> None:
        """Code the candidate compiled itself, under whatever name it chose, is its own."""
        if isinstance(filename, str) and filename[:1] != "<":  # "<string>": its caller answers
            self.kinds[filename] = _CANDIDATE

    def symlinked(self) -> None:
        """Candidate code made a symlink: a library's path may now lead to the candidate's file."""
        if not self.linked:
            self.linked = True
            self.kinds.clear()

    def written(self, filename: str) -> None:
        """A file the candidate's code wrote (a module it will import) is its own, wherever it is."""
        real = os.path.realpath(filename)
        self.files = self.files | {real}
        self.kinds.pop(filename, None)
        self.kinds.pop(real, None)

    def culprit(self, frame: Any) -> tuple[str, int] | None:
        """Where the candidate's code made the call that ``frame`` (the innermost) is part of."""
        threaded = False
        while frame is not None:
            code = frame.f_code
            kind = self.kind(code.co_filename)
            if kind == _CANDIDATE:
                return code.co_filename, frame.f_lineno
            if kind == _OTHER:
                return None
            threaded = code.co_name == "_bootstrap" and code.co_filename.endswith("threading.py")
            frame = frame.f_back
        # a thread whose stack is only trampolines runs a target nothing but the candidate chose
        return ("<a thread's target>", 0) if threaded else None

    def shown(self, filename: str) -> str:
        real = os.path.realpath(filename) if filename[0] != "<" else filename
        return real[len(self.root):] if self.root is not None and real.startswith(self.root) else filename


def _harness(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        module = getattr(type(obj), "__module__", "")
    return isinstance(module, str) and module.startswith(_HARNESS)


_WRITES_CODE = "wrote a module"
_LINKS = "made a symlink"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _writes(args: tuple[Any, ...]) -> bool:
    """Whether an ``open`` event (path, mode, flags) opens its file for writing."""
    mode = args[1] if len(args) > 1 else None
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    flags = args[2] if len(args) > 2 else 0
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _path_text(path: object) -> str | None:
    """A path as a plain ``str``: a subclass's own methods (which could raise or lie) are not called."""
    if isinstance(path, bytes):
        return bytes.decode(bytes(memoryview(path)), "utf-8", "replace")
    return str.__getitem__(path, slice(None)) if isinstance(path, str) else None


class Watch:
    """The hook's state: where alarms go, what counts as the candidate's, what was sent."""

    def __init__(self, fd: int | None, attribution: Attribution, run_folder: str | None, nonce: str) -> None:
        self.fd = fd
        self.attribution = attribution
        self.run_folder = os.path.realpath(run_folder) + os.sep if run_folder else None
        # where a trial without the sandbox could write what outlives it: your environment, your checkout
        marker = os.sep + ".autoresearch" + os.sep
        checkout = self.run_folder.rpartition(marker)[0] + os.sep if self.run_folder and marker in self.run_folder else None
        self.kept_places = [(p, what) for p, what in [(_real_dir(sys.prefix), "the virtual environment"), *[(_real_dir(d), "the virtual environment") for d in _site_dirs()], (checkout, "your checkout")] if p]
        self.nonce = nonce
        self.busy: set[int] = set()
        self.sent: set[tuple[str, str, int]] = set()
        self.alarms: list[dict[str, object]] = []
        self.lost = False
        # the descriptors the trial started with, stdio aside (the result and alarm pipes among
        # them): the ones a candidate has no business opening; pipes it makes (subprocess) are its own
        self.inherited = _open_fds() - {0, 1, 2}

    # -- the hook -----------------------------------------------------------------------

    def hook(self) -> Callable[[str, tuple[Any, ...]], None]:
        """The audit hook: a plain function (cheaper to call than a method) that drops every event
        outside :data:`WATCHED` first; the rest go to :meth:`seen`, once per thread at a time (what
        the hook does itself raises events)."""
        watched, busy, get_ident, seen = WATCHED, self.busy, _get_ident, self.seen

        def audit(event: str, args: tuple[Any, ...]) -> None:
            if event in watched:
                me = get_ident()
                if me not in busy:
                    busy.add(me)
                    try:
                        seen(event, args)
                    finally:
                        busy.discard(me)

        return audit

    def seen(self, event: str, args: tuple[Any, ...]) -> None:
        try:
            if event in _ATTRS and _getframe(2).f_code.co_filename in _OWN:
                return  # the trial's own checks reading the harness's code objects
            what = self._suspect(event, args)
            if what is not None:
                where = self.attribution.culprit(_getframe(2))
                if where is not None and what == _LINKS:
                    self.attribution.symlinked()
                    return
                if where is not None and what == _WRITES_CODE:
                    self.attribution.written(_path_text(args[0]) or "")
                    return
                if where is not None and where[1] == 0 and event in ("sys.settrace", "sys.setprofile"):
                    where = self._tracer(args[0] if args else None)
                if where is not None:
                    self._alarm(event, what, *where)
        except Exception:  # never breaks the trial's own code; made to fail on purpose, it tells
            try:
                where = self.attribution.culprit(_getframe(2))
                if where is not None:
                    self._alarm(event, f"made the audit hook fail on {event}", *where)
            except Exception:
                pass

    def _tracer(self, tracer: object) -> tuple[str, int] | None:
        """A new thread installing ``threading.settrace``'s tracer (coverage's, a debugger's):
        the candidate's doing only when the tracer is the candidate's code."""
        code = getattr(getattr(tracer, "__func__", tracer), "__code__", None)
        if code is not None and self.attribution.kind(code.co_filename) == _CANDIDATE:
            return code.co_filename, code.co_firstlineno
        return None

    def _suspect(self, event: str, args: tuple[Any, ...]) -> str | None:
        """What the event would mean if the candidate made it; None for what is harmless anyway."""
        if event in _WALKS or event in _CTYPES or event in _BUILT or event in _FRAMES:
            return f"called {event}"
        if event == "compile":
            frame = _getframe(3)
            if frame is not None and self.attribution.kind(frame.f_code.co_filename) == _CANDIDATE:
                self.attribution.spoofed(args[1] if len(args) > 1 else None)
            return None
        if event == "object.__getattr__":
            obj, name = args[0], args[1]
            if name in _FRAME_ATTRS or (name in _HARNESS_ATTRS and _harness(obj)):
                return f"read {name} of {type(obj).__name__} {getattr(obj, '__qualname__', '')}".rstrip()
            return None
        if event == "object.__setattr__":
            obj, name = args[0], args[1]
            if name == "__code__" or (name in _HARNESS_ATTRS and _harness(obj)):
                return f"set {name} of {type(obj).__name__} {getattr(obj, '__qualname__', '')}".rstrip()
            return None
        if event in _PROCS:
            return "ran git" if self._runs_git(event, args) else None
        return self._path(event, args)

    def _runs_git(self, event: str, args: tuple[Any, ...]) -> bool:
        if event == "os.system":
            return bool(_GIT.search(_path_text(args[0]) or ""))
        words: list[str] = []
        for arg in args[:2] if event != "os.spawn" else args[1:3]:
            if isinstance(arg, (str, bytes, os.PathLike)):
                words.append(_path_text(os.fspath(arg)) or "")
            elif isinstance(arg, (list, tuple)) and arg:
                words.append(_path_text(os.fspath(arg[0])) if isinstance(arg[0], (str, bytes, os.PathLike)) else "")
        return any(os.path.basename(w.split()[0] if w.split() else "") == "git" or _GIT.search(w) for w in words if w)

    def _path(self, event: str, args: tuple[Any, ...]) -> str | None:
        if event == "os.symlink":
            return _LINKS
        path = args[0] if args else None
        if isinstance(path, int):
            return f"opened file descriptor {path}" if event == "open" and path in self.inherited else None
        text = _path_text(path)
        if text is None:
            return None
        if event == "open" and _writes(args) and not text.endswith(".pyc"):
            real = os.path.realpath(text)
            if self.run_folder is None or not real.startswith(self.run_folder):
                for place, what in self.kept_places:
                    if real.startswith(place):
                        return f"wrote {text} ({what})"
            if text.endswith(".py"):
                return _WRITES_CODE
        if "/proc/" not in text and ".git" not in text and ".autoresearch" not in text:
            return None
        if _PROC_SELF.match(text):
            return f"opened {text}"
        real = os.path.realpath(text)
        parts = real.split(os.sep)
        if ".git" in parts:
            return f"opened {text}"
        attribution = self.attribution
        if self.run_folder is not None and real.startswith(self.run_folder):
            if attribution.root is None or not (real + os.sep).startswith(attribution.root):
                return f"opened {text} (the run folder)"
        return None

    def _alarm(self, event: str, what: str, filename: str, line: int) -> None:
        shown = self.attribution.shown(filename)
        key = (event, shown, line)
        if key in self.sent:
            return
        self.sent.add(key)
        if len(self.sent) > ALARM_LIMIT + 1:
            return
        if len(self.sent) == ALARM_LIMIT + 1:
            alarm: dict[str, object] = {"event": "limit", "what": f"reached for more than {ALARM_LIMIT} things", "file": shown, "line": line, "text": ""}
        else:
            alarm = {"event": event, "what": what[:200], "file": shown, "line": line, "text": _line_text(filename, line)}
        self.alarms.append(alarm)
        self._send(alarm)

    def _send(self, message: dict[str, object]) -> None:
        if self.fd is None:
            return
        data = (encode_json(message) + "\n").encode()
        try:
            while data:
                data = data[raw_write(self.fd, data):]
        except OSError:
            self.lost = True

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """This thread's events go unseen: for the trial's snapshot of the harness, taken before
        the session collects (and imports) anything, which reads thousands of code objects."""
        me = _get_ident()
        self.busy.add(me)
        try:
            yield
        finally:
            self.busy.discard(me)

    def close(self) -> None:
        """The session ended: the closing line (the driver takes its absence as a cut channel)."""
        self._send({"end": self.nonce, "count": len(self.alarms)})


def _line_text(filename: str, line: int) -> str:
    if filename[0] == "<" or line <= 0:
        return ""
    try:
        with open(filename, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, start=1):
                if number == line:
                    return text.strip()[:200]
    except OSError:
        pass
    return ""


def _real_dir(path: str | None) -> str | None:
    return os.path.realpath(path) + os.sep if path else None


def _site_dirs() -> list[str]:
    """The interpreter's package folders (a venv's and, where enabled, the user's)."""
    import site

    dirs = list(getattr(site, "getsitepackages", lambda: [])())
    if site.ENABLE_USER_SITE and site.USER_SITE:
        dirs.append(site.USER_SITE)
    return dirs


def _open_fds() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/fd")}
    except OSError:
        return set()


def install(spec: dict[str, Any], frozen: Iterable[str]) -> Watch:
    """Add the audit hook for this trial (it cannot be removed again, by anyone)."""
    attribution = Attribution(spec.get("worktree"), frozen, spec.get("candidate", ()))
    watch = Watch(spec.get("alarm_fd"), attribution, spec.get("run_folder"), str(spec.get("nonce", "")))
    sys.addaudithook(watch.hook())
    return watch
