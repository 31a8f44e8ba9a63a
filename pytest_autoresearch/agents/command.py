"""``cmd:COMMAND``: an external coding agent (``claude -p``, ``codex exec``, aider) as the agent.

Each trial the command runs in the current best's worktree (slot 0's, the rootdir's copy in
it) with the same prompt the litellm agent gets (on stdin, or in the file named by a
``{prompt_file}`` argument), edits files there as it sees fit, and whatever it changed, as git
sees it, becomes the proposal. The engine then resets the worktree
(:mod:`pytest_autoresearch.engine.proposer`) and checks that proposal against the surface like
any other (:func:`pytest_autoresearch.proposals.proposal.check`), so an agent that strays
outside the mutable files gets an ``invalid`` trial, never a changed checkout.
The command runs in its own process group under the agent timeout, like a trial does, and
its output goes to files, so neither a hung nor a chatty agent can hurt the loop.

A coding tool keeps state of its own (chat histories, caches). The command is told of a scratch
folder outside the worktree and the user's checkout (``{scratch}`` in an argument,
``AUTORESEARCH_SCRATCH`` in its environment), the same for every trial of a session, for those
files. A new file that git would otherwise report and that only a known tool writes (aider's
``.aider.*``, see :data:`TOOL_STATE`) is left out of the proposal with a note instead of rejecting
the trial: it is the tool's bookkeeping, not an edit, and it never reaches the candidate, since the
worktree is reset after the command. A change to any file the project tracks is never left out.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from ..proposals.proposal import Proposal
from ..proposals.surface import Surface
from ..core.text import one_line
from ..system.procs import kill_group, start_group, wait_unreaped
from .base import Agent, AgentError, ProposalContext
from .prompt import render_prompt

PLACEHOLDER = "{prompt_file}"
SCRATCH = "{scratch}"
#: Names (of a file or of a folder on its path) that only coding tools write, as their own state:
#: aider's chat, input and LLM histories and its repository-map cache.
TOOL_STATE = (".aider.*",)
TAIL_BYTES = 20_000
DESCRIPTION_CHARS = 200
ERROR_LINES = 5

INSTRUCTIONS = """\
You are working in a copy of the project; the current working directory is its root. Edit
files directly there. Only these files may change: {files}. Make one focused change that you
expect to improve the primary metric. Do not run the test suite (the loop runs it after you),
do not commit, and do not create, delete or edit any other file: a change to any other file
rejects the whole trial. End your output with one line that describes the change, e.g.
"raise the learning rate to 0.02"."""

# Keep the parent's git from being redirected (a loop started from a git hook, say).
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


def _git(workdir: Path, *args: str, git_env: Mapping[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update(git_env or {})  # the worktree's git dirs, named: the command could rewrite its .git
    env["GIT_OPTIONAL_LOCKS"] = "0"
    proc = subprocess.run(["git", *args], check=False, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AgentError(f"git {' '.join(args)} failed in {workdir}: {proc.stderr.strip()}")
    return proc.stdout


class Changes(NamedTuple):
    """What a command changed in the worktree (see :func:`worktree_changes`)."""

    files: dict[str, str | None]  # rootdir-relative path -> new text, or None for a deleted file
    error: str | None = None  # why the changes cannot be a proposal
    tool_files: tuple[str, ...] = ()  # a coding tool's own new files, left out of ``files``


def is_tool_state(rel: str) -> bool:
    """Whether a rootdir-relative path is named as only a coding tool's own files are (:data:`TOOL_STATE`)."""
    return any(fnmatch.fnmatchcase(part, pattern) for part in rel.split("/") for pattern in TOOL_STATE)


def worktree_changes(
    workdir: Path, since: str | None = None, git_env: Mapping[str, str] | None = None, surface: Surface | None = None
) -> Changes:
    """What changed in ``workdir``'s worktree.

    Paths are relative to ``workdir`` (the rootdir's copy); a change elsewhere in the
    repository keeps a ``../`` path so that the surface check rejects it rather than it being
    lost. ``since`` is the commit the worktree started at: if the command committed anyway,
    the committed changes count too. ``git_env`` names the worktree's git dirs. Given the
    ``surface``, a file outside it that ``since`` did not have and that is named as a coding
    tool's own (:func:`is_tool_state`) goes to ``tool_files`` and is not read (a binary cache).
    """
    git = functools.partial(_git, workdir, git_env=git_env)
    status = git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=all")
    paths = {entry[3:].rstrip("/") for entry in status.split("\0") if entry}  # an untracked nested repository shows as "dir/"
    if since is not None and git("rev-parse", "HEAD").strip() != since:
        paths |= {p for p in git("diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", since, "HEAD").split("\0") if p}
    root = Path(git("rev-parse", "--show-toplevel").strip())
    prefix = git("rev-parse", "--show-prefix").strip()

    def rel_of(repo_path: str) -> str:
        return repo_path[len(prefix):] if repo_path.startswith(prefix) else posixpath.relpath(repo_path, prefix)

    tool: set[str] = set()
    if surface is not None:
        named = [p for p in paths if is_tool_state(rel_of(p)) and not surface.matches(rel_of(p))]
        if named:
            start = since if since is not None else "HEAD"
            tracked = set(git("ls-tree", "-r", "-z", "--name-only", "--full-tree", start, "--", *named).split("\0"))
            tool = {p for p in named if p not in tracked}
    files: dict[str, str | None] = {}
    for repo_path in sorted(paths - tool):
        rel = rel_of(repo_path)
        target = root / repo_path
        if target.is_symlink() or (target.exists() and not target.is_file()):
            return Changes({}, f"{rel} is not a regular file")
        if not target.exists():
            files[rel] = None
            continue
        data = target.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\0"
        if "\0" in text:
            return Changes({}, f"{rel} is not UTF-8 text (binary files cannot be proposed)")
        files[rel] = text
    return Changes(files, None, tuple(sorted(rel_of(p) for p in tool)))


def _named(paths: tuple[str, ...]) -> list[str]:
    """Tool files by the name that marks them: a cache folder once, not each file in it."""
    names: list[str] = []
    for rel in paths:
        parts = rel.split("/")
        end = next(i for i, part in enumerate(parts) if is_tool_state(part)) + 1
        name = "/".join(parts[:end]) + ("/" if end < len(parts) else "")
        if name not in names:
            names.append(name)
    return names


def _ignores_tool_state(gitignore: str) -> bool:
    """Whether a .gitignore has a rule for a coding tool's own files (aider adds ``.aider*``)."""
    stems = [pattern.split("*")[0].rstrip(".") for pattern in TOOL_STATE]  # ".aider.*" -> ".aider", as in ".aider*"
    return any(line.strip().lstrip("/").startswith(stem) for line in gitignore.splitlines() for stem in stems)


def _text_at(workdir: Path, commit: str, rel: str, git_env: Mapping[str, str]) -> str:
    """A rootdir-relative file's text at ``commit``, empty where it had none."""
    try:
        return _git(workdir, "show", f"{commit}:./{rel}", git_env=git_env)
    except AgentError:
        return ""


def _tail(path: Path, limit: int = TAIL_BYTES) -> str:
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
        return f.read().decode("utf-8", "replace")


def _last_lines(text: str, count: int) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()][-count:]


class CommandAgent(Agent):
    """Runs ``command`` once per trial in the worktree; its edits there are the proposal."""

    name = "cmd"
    edits_workdir = True

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        self._argv: list[str] | None = None
        self._tmp: Path | None = None
        self._noted_tool_state = False
        self._noted_gitignore = False

    def describe(self) -> str:
        return f"cmd: {self.command}"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        """The command must parse and its program exist, or every trial would fail: said
        before the baseline."""
        try:
            self._argv = self._resolve()
        except AgentError as exc:
            return str(exc)
        return None

    def start(self, context: ProposalContext) -> None:
        """Fail before the first trial if the command cannot run at all: every trial would."""
        self._argv = self._resolve()

    def _resolve(self) -> list[str]:
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            raise AgentError(f"cannot parse the command {self.command!r}: {exc}") from None
        if not argv:
            raise AgentError("the command of 'cmd:COMMAND' is empty")
        program = argv[0]
        if "/" in program:
            # relative to where the user typed it, not to the worktree the command runs in
            program = str(Path(program).expanduser().absolute())
            argv[0] = program
        if shutil.which(program) is None:
            raise AgentError(f"program {argv[0]!r} not found or not executable (command {self.command!r})")
        return argv

    def _program(self) -> str:
        assert self._argv is not None
        return Path(self._argv[0]).name

    def propose(self, context: ProposalContext) -> Proposal:
        """Every way the command can fail is an ``invalid`` trial whose reason the next prompt shows."""
        if self._argv is None:
            self.start(context)
        assert self._argv is not None
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="autoresearch-cmd-"))
            (self._tmp / "scratch").mkdir()
        scratch = self._tmp / "scratch"  # the command's own files, kept across the session's trials
        instructions = INSTRUCTIONS.format(files=", ".join(sorted(context.files)))
        prompt = render_prompt(context, instructions).text()
        prompt_file = self._tmp / "prompt.md"  # outside the worktree, so it is never a change
        prompt_file.write_text(prompt, encoding="utf-8")
        uses_file = any(PLACEHOLDER in arg for arg in self._argv)
        argv = [arg.replace(PLACEHOLDER, str(prompt_file)).replace(SCRATCH, str(scratch)) for arg in self._argv]
        env = dict(os.environ)
        env["AUTORESEARCH_PROMPT_FILE"] = str(prompt_file)
        env["AUTORESEARCH_SCRATCH"] = str(scratch)
        env["AUTORESEARCH_TRIAL"] = str(context.trial)
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # an agent that runs Python leaves no __pycache__ behind
        since = _git(context.workdir, "rev-parse", "HEAD", git_env=context.git_env).strip()
        out_path, err_path = self._tmp / "stdout.txt", self._tmp / "stderr.txt"

        with out_path.open("wb") as out, err_path.open("wb") as err, prompt_file.open("rb") as prompt_in:
            proc = start_group(
                argv,
                cwd=context.workdir,
                env=env,
                stdin=subprocess.DEVNULL if uses_file else prompt_in,  # a file, so a command that never reads it cannot block us
                stdout=out,
                stderr=err,
            )
            try:
                exited = wait_unreaped(proc, self.timeout)
            finally:
                kill_group(proc)  # at the deadline, on Ctrl-C, and after a normal exit: whatever it spawned dies too

        stdout, stderr = _tail(out_path), _tail(err_path)
        last = _last_lines(stdout, 1)
        description = one_line(last[0], DESCRIPTION_CHARS) if last else f"cmd: {self._program()}"

        def failed(error: str) -> Proposal:
            return Proposal(description, error=error, prompt=prompt, answer=stdout)

        if not exited:
            context.note(f"trial {context.trial}: {self._program()} did not finish within {self.timeout:g}s; killed it")
            return failed(f"the command did not finish within {self.timeout:g}s and was killed")
        if proc.returncode != 0:
            tail = _last_lines(stderr, ERROR_LINES) or _last_lines(stdout, ERROR_LINES)
            how = f"exited with status {proc.returncode}" if proc.returncode > 0 else f"was killed by signal {-proc.returncode}"
            return failed(f"the command {how}" + (":\n" + "\n".join(tail) if tail else ""))
        files, error, left_out = worktree_changes(context.workdir, since, context.git_env, context.surface)
        if error is not None:
            return failed(error)
        if left_out and not self._noted_tool_state:
            self._noted_tool_state = True
            context.note(
                f"trial {context.trial}: {self._program()} wrote files of its own into the worktree ({', '.join(_named(left_out))}):"
                " they are not part of the proposal; give the tool the scratch folder for them ({scratch} in the"
                " command, $AUTORESEARCH_SCRATCH in its environment; docs/agents.md)"
            )
        if not files:
            return failed("the command changed no file" + (f" (only files of its own: {', '.join(_named(left_out))})" if left_out else ""))
        ignored = [
            rel for rel, text in files.items()
            if posixpath.basename(rel) == ".gitignore" and text is not None and not context.surface.matches(rel)
            and _ignores_tool_state(text)
            and not _ignores_tool_state(_text_at(context.workdir, since, rel, context.git_env))
        ]
        if ignored and not self._noted_gitignore:
            self._noted_gitignore = True  # the surface check rejects the trial; this says why it happened
            context.note(
                f"trial {context.trial}: {self._program()} added its own files to {ignored[0]}, which is outside the surface,"
                " so the trial is rejected: tell it not to (aider: --no-gitignore or --no-git; docs/agents.md)"
            )
        return Proposal(description, files, prompt=prompt, answer=stdout)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
