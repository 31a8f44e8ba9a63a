"""How a run starts: every check that can be made before running anything, then a new run or
the continuation of an earlier one with the same tag, its worktree and its frozen manifest.

A new run that fails to start leaves the repository as it was (everything it created is
undone). A resumed run repairs what a driver killed outright can leave half-done: a last
row cut short, the branch one step behind the log, a stale worktree, an orphaned trial.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .. import config_file
from ..agents import Agent, AgentError
from ..core.history import History
from ..core.records import TrialRecord
from ..errors import SetupError
from ..names import RUN_DIR_NAME, branch, branch_ref, trial_ref
from ..proposals.surface import Surface
from ..settings import Settings
from ..store.gitguard import RepoGuard
from ..store.gitstate import ZERO, GitStateError, Repository, Worktree
from ..store.results_log import read_records, repair
from ..store.runfolder import RunFolder, RunLocked, RunMeta
from ..system.manifest import Manifest
from ..system.sandbox import bwrap_available, scrub
from . import carry, worktree_setup
from .recorder import run_refs, signals_held
from .slots import Slot, Slots
from .worktree_setup import Generated

DEFAULT_PROGRAM = Path(__file__).parent.parent / "agents" / "default_program.md"



@dataclasses.dataclass
class Run:
    """Everything a started run knows about itself."""

    settings: Settings
    repo: Repository
    head: str  # the user's HEAD now
    base_ref: str  # the user's branch (or HEAD's commit) the run started from
    prefix: str  # the rootdir inside the repository: "" or "sub/"
    tag: str
    folder: RunFolder
    surface: Surface
    surface_files: list[str]
    context_paths: list[str]
    agent: Agent
    program: str
    notes: list[str]
    undo: list[Callable[[], None]]
    slots: Slots | None = None  # the worktrees: slot 0 (home) holds the best, workers evaluate
    guard: RepoGuard | None = None
    carry: tuple[str, ...] = ()  # carried paths, repository-relative
    records: list[TrialRecord] = dataclasses.field(default_factory=list)  # a resumed run's log
    meta: RunMeta | None = None  # run.json of a resumed run
    start_commit: str = ""  # what the baseline scores: HEAD for a new run
    rebaseline: bool = True  # whether the start commit still needs a baseline row

    @property
    def branch(self) -> str:
        return branch(self.tag)

    @property
    def resumed(self) -> bool:
        return self.meta is not None

    @property
    def home(self) -> Slot:
        assert self.slots is not None, "the run's worktrees are not open"
        return self.slots.home

    def abandon(self) -> None:
        """Undo the set-up (a setup error, or Ctrl-C before the baseline stood): the repository
        is as it was. Held against a second Ctrl-C, which would leave half of it undone."""
        with signals_held():
            while self.undo:
                self.undo.pop()()
            self.slots = None

    def stands(self) -> None:
        """The baseline is logged: from now on the run is kept, whatever happens."""
        self.undo.clear()


def _tag_taken(repo: Repository, settings: Settings, tag: str) -> bool:
    return repo.ref_exists(branch_ref(tag)) or (settings.rootdir / RUN_DIR_NAME / tag).exists()


def _make_agent(config: pytest.Config, spec: str) -> Agent:
    try:
        agent = config.hook.pytest_autoresearch_make_agent(config=config, spec=spec)
    except AgentError as exc:
        raise SetupError(f"agent {spec}: {exc}") from None
    if agent is None:
        raise SetupError(f"unknown agent {spec!r}: use 'mutate[:SEED]', 'optuna[:SAMPLER][:SEED]', 'litellm:MODEL', 'cmd:COMMAND', 'replay:PATH' or 'hybrid:SPEC'")
    return agent


def start_run(config: pytest.Config, settings: Settings) -> Run:
    """Check, then create (or reopen) the run's folder, lock and worktree. Raises SetupError."""
    s = settings
    surface = Surface(s.mutable)
    if not surface:
        raise SetupError(
            "autoresearch_mutable is not set: list the files the agent may change, e.g. "
            + config_file.of(s.config_file).setting("autoresearch_mutable", ["model.py"])
        )
    if s.sandbox and not bwrap_available():
        raise SetupError("autoresearch_sandbox = true needs bubblewrap (bwrap): install it (Debian: apt install bubblewrap)")
    try:
        repo = Repository(s.rootdir)
        head = repo.head()
    except GitStateError as exc:
        raise SetupError(str(exc)) from None
    rel_root = Path(os.path.relpath(s.rootdir.resolve(), repo.root))
    prefix = "" if str(rel_root) == "." else rel_root.as_posix() + "/"
    tag = s.tag
    folder = RunFolder(s.rootdir / RUN_DIR_NAME / tag)
    resuming = _tag_taken(repo, s, tag)
    start = repo.rev(branch_ref(tag)) if resuming else head
    early_notes = []
    if resuming and (start is None or not folder.meta.exists() or not _has_rows(folder.results)):
        early_notes.append(_clear_unstarted(repo, tag, folder, head))
        resuming, start = False, head
    assert start is not None
    tracked = [p[len(prefix):] for p in repo.tracked_files(start) if p.startswith(prefix)]
    surface_files = surface.select(tracked)
    if not surface_files:
        raise SetupError(
            f"autoresearch_mutable {list(surface.globs)} matches no committed file under {s.rootdir}; "
            "the globs are relative to the rootdir and the files must be committed"
        )
    notes = early_notes + [f"autoresearch_mutable glob {g!r} matches no committed file" for g in surface.unmatched_globs(tracked)]
    for path in surface_files:
        if path.rsplit("/", 1)[-1].lower() == "conftest.py":
            raise SetupError(f"autoresearch_mutable includes {path}: conftest files steer pytest itself and must stay frozen")
    shown = Surface(s.context)
    context_paths = [p for p in shown.select(tracked) if p not in surface_files]
    notes += [f"autoresearch_context glob {g!r} matches no committed file" for g in shown.unmatched_globs(tracked)]
    notes += _dirty_notes(repo, prefix, surface)
    run = Run(
        settings=s,
        repo=repo,
        head=head,
        base_ref=repo.current_branch() or head,
        prefix=prefix,
        tag=tag,
        folder=folder,
        surface=surface,
        surface_files=surface_files,
        context_paths=context_paths,
        agent=_make_agent(config, s.agent_spec),
        program=(s.program_path or DEFAULT_PROGRAM).read_text(encoding="utf-8"),
        notes=notes,
        undo=[],
        start_commit=start,
    )
    try:
        _reopen(run) if resuming else _create(run)
        _open_worktree(run)
    except BaseException:
        run.abandon()
        raise
    return run


def _has_rows(results: Path) -> bool:
    """Whether results.tsv holds a row (a whole one, below its header)."""
    try:
        with results.open("rb") as f:
            return f.readline().endswith(b"\n") and f.readline().endswith(b"\n")
    except OSError:
        return False


def _clear_unstarted(repo: Repository, tag: str, folder: RunFolder, head: str) -> str:
    """Remove what a run that never logged its baseline left (an older version interrupted in
    its baseline, a driver killed during set-up), when removing it loses nothing: no row, and
    at most the branch and trial 0's ref, both at a commit your HEAD contains. Returns the note;
    raises SetupError naming what is left, and how to remove it, otherwise."""
    ours, _ = run_refs(tag)
    refs = repo.refs(*ours)
    commits = set(refs.values())
    expendable = not _has_rows(folder.results) and (
        not refs or (set(refs) <= {branch_ref(tag), trial_ref(tag, 0)} and len(commits) == 1 and repo.is_ancestor(commits.pop(), head))
    )
    if not expendable:
        have = [f"branch {branch(tag)}" if branch_ref(tag) in refs else "", f"{len(refs)} refs under {ours[1]}" if refs else ""]
        have.append(f"{folder.path} with {'rows in results.tsv' if _has_rows(folder.results) else 'no results.tsv rows'}" if folder.path.exists() else "")
        raise SetupError(
            f"run {tag!r} cannot be resumed: a run needs its branch, run.json and results.tsv with rows, and there is "
            f"{' and '.join(h for h in have if h) or 'only part of it'}. Choose another --autoresearch-tag, or remove what is left: "
            f"rm -rf {folder.path}; git for-each-ref --format='delete %(refname)' {' '.join(ours)} | git update-ref --stdin"
        )
    left = [*(ref.removeprefix("refs/heads/") for ref in sorted(refs, key=lambda r: (r != branch_ref(tag), r))), *([f"{folder.path}/"] if folder.path.exists() else [])]
    if folder.path.exists():
        held = RunFolder(folder.path)
        try:
            held.lock()
        except RunLocked as holder:
            raise SetupError(f"run {tag!r} is in use by another loop ({holder}); wait for it or choose another tag") from None
        held.unlock()
        shutil.rmtree(folder.path)
    if refs:
        repo.update_refs(*((ref, ZERO, value) for ref, value in refs.items()))
    repo.prune_worktrees()
    return f"starting run {tag} afresh: removed what an earlier start left before its baseline was logged ({', '.join(left)})"


def _dirty_notes(repo: Repository, prefix: str, surface: Surface) -> list[str]:
    dirty = sorted(p[len(prefix):] for p in repo.dirty_files() if p.startswith(prefix))
    if not dirty:
        return []
    mutable = [p for p in dirty if surface.matches(p)]
    shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
    note = f"uncommitted changes to {shown} are not part of the run: it starts from HEAD and never touches your checkout"
    if mutable:
        note += f" (the loop optimises the committed {', '.join(mutable)}, not the version in your editor)"
    return [note]


def _lock(run: Run) -> None:
    try:
        run.folder.lock()
    except RunLocked as holder:
        raise SetupError(f"run {run.tag!r} is in use by another loop ({holder}); wait for it or choose another tag") from None
    run.undo.append(run.folder.unlock)


def _create(run: Run) -> None:
    folder = run.folder
    top = next((p for p in (folder.path.parent, folder.path) if not p.exists()), None)
    if top is not None:
        run.undo.append(lambda: shutil.rmtree(top, ignore_errors=True))
    _lock(run)
    before = _refs_of(run)
    run.undo.append(lambda: _drop_refs_since(run, before))
    folder.create()
    pattern = f"/{run.prefix}{RUN_DIR_NAME}/"
    if run.repo.exclude(pattern):
        run.undo.append(lambda: run.repo.unexclude(pattern))


def _refs_of(run: Run) -> dict[str, str]:
    ours, _ = run_refs(run.tag)
    return run.repo.refs(*ours)


def _drop_refs_since(run: Run, before: dict[str, str]) -> None:
    """Delete the run's refs (its branch, its trial refs) that set-up made; older ones stay."""
    made = [(ref, ZERO, value) for ref, value in _refs_of(run).items() if ref not in before and not value.startswith("symref:")]
    if made:
        run.repo.update_refs(*made)


def _reopen(run: Run) -> None:
    """Continue the run of the same tag: its log, its best, its branch."""
    folder = run.folder
    _lock(run)
    folder.create()
    if folder.kill_leftover_trial():
        run.notes.append("killed the trial the previous driver left running")
    meta = folder.read_meta()
    _same_surface(run, meta)
    run.base_ref = meta.base_ref  # where the run started, not where your checkout is now
    if repair(folder.results):
        run.notes.append("dropped a half-written last row of results.tsv")
    run.records = read_records(folder.results, meta.columns)
    if not run.records:
        raise SetupError(f"{folder.results} has no baseline row; remove {folder.path} and the branch to start over")
    run.meta = meta
    best = History(run.records).best
    tip = run.start_commit
    if tip == best.commit:
        run.rebaseline = False
    elif run.repo.is_ancestor(tip, best.commit):
        # the previous driver logged a kept trial and died before moving the branch
        run.repo.update_refs((branch_ref(run.tag), best.commit, tip))
        run.start_commit, run.rebaseline = best.commit, False
        run.notes.append(f"moved branch {run.branch} to the best logged trial ({best.trial})")
    else:
        run.notes.append(f"branch {run.branch} has commits the log does not know: scoring it as a new baseline")
    last = run.records[-1]
    if last.commit:
        run.repo.update_refs((trial_ref(run.tag, last.trial), last.commit, None))
    moved = "" if run.head == meta.head else f"; your HEAD moved since ({run.head[:10]}), start a new tag to run from it"
    run.notes.insert(
        0, f"resuming run {run.tag} after trial {last.trial}: best {best.score:.6g} from trial {best.trial} (started from {meta.head[:10]}{moved})"
    )


def _same_surface(run: Run, meta: RunMeta) -> None:
    """A resumed run optimises the surface it started with: its kept commits, its frozen files
    and its log all assume it. A different autoresearch_mutable is refused rather than
    followed or ignored silently; an older run.json that did not record it is taken as it is now."""
    now = list(run.surface.globs)
    if meta.mutable is None:
        run.notes.append(f"run.json does not record the run's surface (an older version wrote it): continuing with autoresearch_mutable {now}")
    elif sorted(meta.mutable) != sorted(now):
        raise SetupError(
            f"run {run.tag!r} was started with autoresearch_mutable {meta.mutable}, and it is now {now}: a run keeps "
            f"the surface it started with. Set it back to continue run {run.tag!r}, or start a new run with the new "
            f"surface under another --autoresearch-tag (after git merge {run.branch}, to start from this run's best)"
        )


def _open_worktree(run: Run) -> None:
    """The run's worktrees at its start commit, carried paths linked in, manifests pinned."""
    folder, s = run.folder, run.settings
    for stale in [folder.worktree, *sorted(folder.path.glob("worktree-*"))]:
        if stale.exists() or stale.is_symlink():
            run.repo.remove_worktree(stale)
            shutil.rmtree(stale, ignore_errors=True)
    run.repo.prune_worktrees()  # a worktree registered whose folder is gone (a set-up killed outright)
    tracked = [p[len(run.prefix):] for p in run.repo.tracked_files(run.start_commit) if p.startswith(run.prefix)]
    carried = carry.resolve(run.repo, s.rootdir, run.prefix, s.carry, tracked, run.surface)
    run.carry = carried.paths
    run.notes += carried.notes
    if s.setup:
        worktree_setup.check_command(s.setup)
        if s.backend != "local":
            raise SetupError(f"autoresearch_setup runs in local worktrees only, not on {s.backend} workers: build there yourself, or run with --autoresearch-backend=local")
    frozen = {
        path: sha
        for path, sha in run.repo.blobs(run.start_commit).items()
        if not (path.startswith(run.prefix) and run.surface.matches(path[len(run.prefix):]))
    }
    home = _add_slot(run, 0, frozen)
    workers = [home] if s.workers == 1 else [_add_slot(run, i, frozen) for i in range(1, s.workers + 1)]
    run.slots = Slots(home, workers, run.prefix, run.carry)
    if home.generated is not None:
        built = ", ".join(p[len(run.prefix):] for p in home.generated.paths[:5]) or "nothing untracked"
        run.notes.append(f"autoresearch_setup {s.setup!r} ran in each worktree and built {built} (logs in {folder.path / 'setup'})")
    run.guard = run.repo.guard = RepoGuard(run.repo.paths)


def _add_slot(run: Run, index: int, frozen: dict[str, str]) -> Slot:
    folder, s = run.folder, run.settings
    path = folder.worktree_of(index)
    run.undo.append(lambda: run.repo.remove_worktree(path))  # before it exists: Ctrl-C may come in between
    worktree = run.repo.add_worktree(path, run.start_commit)
    carry.link(worktree.path, run.repo.root, run.carry)
    env = {}
    if s.devices:
        env["CUDA_VISIBLE_DEVICES"] = s.devices[max(0, index - 1) % len(s.devices)]
    generated = _build(run, worktree, env)
    manifest = Manifest.pin(worktree.path, frozen)
    manifest.save(folder.manifest_of(index))
    return Slot(index, worktree, manifest, folder.manifest_of(index), env, run.start_commit, generated)


def _build(run: Run, worktree: Worktree, extra: dict[str, str]) -> Generated | None:
    """autoresearch_setup in a new worktree (the trials' environment, secrets left out); None
    when no command is set. A new run still setting up removes its folder on failure, so the
    log is then copied out of it."""
    s = run.settings
    if not s.setup:
        return None
    # no bytecode: a candidate's same-second, same-size edit must not meet a .pyc the command left
    env = {**scrub(os.environ, s.pass_env)[0], **extra, "PYTHONDONTWRITEBYTECODE": "1"}
    log = run.folder.path / "setup" / f"{worktree.path.name}.log"
    build = lambda: worktree_setup.run(s.setup, worktree.path, worktree_setup.worktree_git(worktree), worktree.path / run.prefix, log, env, keep_log=run.resumed or not run.undo)
    return Generated(worktree.path, build(), build)
