"""Attacks on the driver's git: paths and config a trial can write.

A candidate that genuinely improves the score (so a loop that missed the attack would keep it)
also, at import time, rewrites what git reads: its worktree's ``.git`` link (to your
repository, or replaced by a fake repository whose config sets ``core.fsmonitor``), your
repository's own ``.git/config`` (``core.fsmonitor``, ``diff.external``, a filter driver with
a ``.gitattributes``, ``core.hooksPath``, ``core.pager``), the worktree's metadata
(``gitdir``, ``commondir``, ``HEAD``) or your ``~/.gitconfig``. Each command it plants writes
a marker file and starts a daemon. Whatever the attack: the command never runs, no process is
left, your checkout, index, branches, config and hooks are as they were, nothing appears in
``.git`` beyond the run's own refs, objects and worktree metadata, and the trial is not kept:
``tamper`` (the change was found and put back) without the sandbox; with it the write fails
(the link is bound read-only, the repository is out of sight) and the trial, which tried and
gained, is parked for ``review``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from helpers import Project
from test_containment import Containment, better, bwrap_works, hostile, reasons

SANDBOX = [pytest.param(False, id="plain"), pytest.param(True, id="sandbox")]

#: Import-time code shared by the attacks: where the worktree's git metadata and your
#: repository's git dir are (through the worktree's ``.git`` link, as git finds them), and
#: ``plant(name)``: an executable script that records that it ran and starts a daemon.
FIND = '''
import stat
LINK = HERE / ".git"
try:
    META = pathlib.Path(LINK.read_text().split(":", 1)[1].strip())
    COMMON = (META / (META / "commondir").read_text().strip()).resolve()
except OSError:  # in the sandbox your repository is out of sight
    META = COMMON = pathlib.Path("/nonexistent")
def plant(folder, name):
    path = pathlib.Path(folder) / name
    path.write_text("#!/bin/sh\\necho ran >> " + repr(str(MARKERS / name)) + "\\n"
                    "setsid sh -c 'sleep 300 # " + TOKEN + "' >/dev/null 2>&1 < /dev/null &\\n")
    path.chmod(0o755)
    return path
def attempt(action):
    try:
        action()
    except OSError:
        pass
'''


def prelude(project: Project, token: str, attack: str) -> str:
    markers = project.outside / "markers"
    markers.mkdir(exist_ok=True)
    return f"MARKERS = pathlib.Path({str(markers)!r})\nTOKEN = {token!r}\n" + FIND + attack


def loop(project: Project, sandbox: bool, *proposals: dict[str, object], env: dict[str, str] | None = None) -> pytest.RunResult:
    if sandbox and not bwrap_works():
        pytest.skip("autoresearch_sandbox needs a working bubblewrap (bwrap)")
    extra = ["-o", "autoresearch_sandbox=true"] if sandbox else []
    return project.loop(project.replay(*proposals), f"--autoresearch-trials={len(proposals)}", *extra, env=env)


RUN_OWN = ("objects/", "worktrees/", "refs/autoresearch/", "refs/heads/autoresearch/", "logs/refs/autoresearch/", "logs/refs/heads/autoresearch/")


def git_dir_files(project: Project) -> dict[str, str]:
    """Every file of your ``.git`` but the run's own (its refs, objects, worktree metadata),
    with a hash of what it holds; your index (the checkout's snapshot covers it) and the exclude
    file (the loop adds its run folder there) by name only."""
    git = project.path / ".git"
    out = {}
    for path in sorted(git.rglob("*")):
        rel = path.relative_to(git).as_posix()
        if path.is_dir() and not path.is_symlink() or rel.startswith(RUN_OWN):
            continue
        out[rel] = "-" if rel in ("index", "info/exclude") else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Guard:
    """:class:`Containment`'s invariants, and: no marker written, nothing new in ``.git``."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.containment = Containment(project)
        self.files = git_dir_files(project)
        self.main = project.git("rev-parse", "refs/heads/main")
        (project.outside / "markers").mkdir(exist_ok=True)

    def check(self, result: pytest.RunResult, token: str, ret: int = 0) -> list[dict[str, str]]:
        rows = self.containment.check(result, marker=token, ret=ret)
        markers = self.project.outside / "markers"
        assert sorted(p.name for p in markers.iterdir()) == [], "a command the candidate planted ran in the driver's git"
        assert git_dir_files(self.project) == self.files, "your .git holds more than the run's refs, objects and worktree metadata"
        assert self.project.git("rev-parse", "refs/heads/main") == self.main
        assert self.project.git("worktree", "list", "--porcelain").count("worktree ") == 1, "a worktree left registered"
        return rows


def not_kept(rows: list[dict[str, str]], attacks: list[int], sandbox: bool, why: str) -> None:
    """Each attacking trial is ``tamper`` naming ``why`` (without the sandbox) or, its write
    having failed, ``review`` for reaching for git (with it); never kept."""
    for n in attacks:
        row = rows[n]
        if sandbox:
            assert row["status"] == "review" and "git or .git" in row["reason"], (n, row["status"], row["reason"])
        else:
            assert row["status"] == "tamper" and why in row["reason"], (n, row["status"], row["reason"])


# --- (a) the worktree's .git link, pointed at your repository -----------------------------------


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_a_worktree_link_pointed_at_your_repository(project: Project, sandbox: bool, no_leftovers: str) -> None:
    """``gitdir: <your .git>`` in the worktree's ``.git``: the driver's status, commit and
    reset would run on your repository (your main moved, your index replaced)."""
    project.init()
    project.write({"notes.txt": "staged, not committed\n"})
    project.git("add", "notes.txt")  # a staged index of yours, which must survive
    guard = Guard(project)
    redirect = prelude(project, no_leftovers, 'attempt(lambda: LINK.write_text(f"gitdir: {COMMON}\\n"))\n')
    result = loop(
        project, sandbox,
        {"description": "redirects the worktree", "files": {"model.py": hostile(redirect, scale=2.5)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result, no_leftovers)
    not_kept(rows, [1], sandbox, "<the worktree's .git link>")
    assert rows[2]["status"] == "keep", reasons(rows)


# --- (b) the worktree's .git replaced by a fake repository ---------------------------------------

FAKE_REPO = '''
def fake(where):
    where.mkdir()
    for sub in ("objects", "refs/heads"):
        (where / sub).mkdir(parents=True)
    (where / "HEAD").write_text("ref: refs/heads/main\\n")
    (where / "config").write_text("[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n"
                                  f"\\tfsmonitor = {plant(MARKERS.parent, 'fake-fsmonitor')}\\n")
def replace_link():
    LINK.unlink()
    fake(LINK)
attempt(replace_link)
'''


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_a_worktree_git_replaced_by_a_fake_repository(project: Project, sandbox: bool, no_leftovers: str) -> None:
    """The worktree's ``.git`` becomes a repository of the candidate's whose ``core.fsmonitor``
    records that it ran and starts a daemon: the driver's ``git status`` would run it, outside
    the sandbox, as you."""
    project.init()
    guard = Guard(project)
    result = loop(
        project, sandbox,
        {"description": "a fake repository", "files": {"model.py": hostile(prelude(project, no_leftovers, FAKE_REPO), scale=2.5)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result, no_leftovers)
    assert not (project.outside / "markers" / "fake-fsmonitor").exists()
    not_kept(rows, [1], sandbox, "<the worktree's .git link>")
    assert rows[2]["status"] == "keep", reasons(rows)


# --- (c) your repository's own config ------------------------------------------------------------


def config_attack(name: str, key: str, extra: str = "") -> str:
    """Append ``key`` (a section and a line naming the planted command ``name``) to your ``.git/config``."""
    return extra + f'''
def append():
    script = plant(MARKERS.parent, {name!r})
    with open(COMMON / "config", "a") as f:
        f.write({key!r}.replace("SCRIPT", str(script)) + "\\n")
attempt(append)
'''


CONFIG_ATTACKS = [
    ("fsmonitor", "[core]\n\tfsmonitor = SCRIPT"),
    ("external", "[diff]\n\texternal = SCRIPT"),
    ("filter", '[filter "x"]\n\tclean = SCRIPT\n\tsmudge = SCRIPT\n\trequired = false'),
    ("hookspath", "[core]\n\thooksPath = SCRIPT.hooks"),
    ("pager", "[core]\n\tpager = SCRIPT"),
]
ATTRIBUTES = 'attempt(lambda: (HERE / ".gitattributes").write_text("* filter=x diff=x\\n"))\n'
HOOKS = '''
def hooks():
    folder = MARKERS.parent / "hookspath.hooks"
    folder.mkdir(exist_ok=True)
    for name in ("post-index-change", "reference-transaction", "post-checkout", "pre-commit", "pre-auto-gc"):
        plant(folder, name)
attempt(hooks)
'''


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_commands_planted_in_your_repository_config(project: Project, sandbox: bool, no_leftovers: str) -> None:
    """The candidate appends to your ``.git/config`` a ``core.fsmonitor``, a ``diff.external``,
    a filter driver (with a ``.gitattributes`` in the worktree that applies it to every file),
    a ``core.hooksPath`` to a folder of hooks, a ``core.pager``; each scores better than the last."""
    project.init()
    guard = Guard(project)
    proposals = []
    for i, (name, key) in enumerate(CONFIG_ATTACKS):
        extra = ATTRIBUTES if name == "filter" else HOOKS if name == "hookspath" else ""
        code = prelude(project, no_leftovers, config_attack(name, key, extra))
        proposals.append({"description": f"plants {name}", "files": {"model.py": hostile(code, scale=2.0 + 0.1 * i)}})
    result = loop(project, sandbox, *proposals, {"description": "honest", "files": better(2.5, 3)})
    rows = guard.check(result, no_leftovers)
    not_kept(rows, list(range(1, len(CONFIG_ATTACKS) + 1)), sandbox, "<your repository's .git/config>")
    assert rows[-1]["status"] == "keep", reasons(rows)
    assert not (project.path / ".git" / "config.restore").exists()


# --- (d) the worktree's metadata -----------------------------------------------------------------

FAKE_COMMON = '''
def fake_common():
    fake(MARKERS.parent / "common")
    (META / "commondir").write_text(str(MARKERS.parent / "common") + "\\n")
attempt(fake_common)
'''
GITDIR = f'attempt(lambda: (META / "gitdir").write_text(str(COMMON) + "\\n"))\n'
HEAD_TO_MAIN = 'attempt(lambda: (META / "HEAD").write_text("ref: refs/heads/main\\n"))\n'
LOCKED = 'attempt(lambda: (META / "locked").write_text("mine\\n"))\n'


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_the_worktree_metadata_rewritten(project: Project, sandbox: bool, no_leftovers: str) -> None:
    """The candidate points the worktree's ``commondir`` at a fake common dir (whose config
    plants an fsmonitor), its ``gitdir`` at your git dir, its ``HEAD`` at your ``main`` (the
    driver's reset would move main), or locks it (it could not be removed)."""
    project.init()
    guard = Guard(project)
    attacks = [("commondir", FAKE_REPO.split("def replace_link")[0] + FAKE_COMMON), ("gitdir", GITDIR), ("HEAD", HEAD_TO_MAIN), ("locked", LOCKED)]
    proposals = [
        {"description": f"rewrites {name}", "files": {"model.py": hostile(prelude(project, no_leftovers, code), scale=2.0 + 0.1 * i)}}
        for i, (name, code) in enumerate(attacks)
    ]
    result = loop(project, sandbox, *proposals, {"description": "honest", "files": better(2.5, 3)})
    rows = guard.check(result, no_leftovers)
    for n, (name, _) in enumerate(attacks, start=1):
        not_kept(rows, [n], sandbox, f"<the worktree's git metadata {name}>")
    assert rows[-1]["status"] == "keep", reasons(rows)


# --- (e) your own git config ---------------------------------------------------------------------

GLOBAL = '''
def global_config():
    script = plant(MARKERS.parent, "global-fsmonitor")
    path = pathlib.Path(os.environ["HOME"]) / ".gitconfig"
    with open(path, "a") as f:
        f.write(f"[core]\\n\\tfsmonitor = {script}\\n[filter \\"x\\"]\\n\\tclean = {script}\\n\\tsmudge = {script}\\n")
    (HERE / ".gitattributes").write_text("* filter=x\\n")
attempt(global_config)
'''


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_commands_planted_in_your_gitconfig(project: Project, sandbox: bool, no_leftovers: str, tmp_path: Path) -> None:
    """The candidate appends an fsmonitor and a filter driver to ``~/.gitconfig`` (``HOME`` is
    a folder of this test's): put back and reported without the sandbox; with it, ``HOME`` is
    the trial's own empty folder, so the write reaches nothing."""
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test User\n")
    before = gitconfig.read_bytes()
    project.init()
    guard = Guard(project)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    result = loop(
        project, sandbox,
        {"description": "plants in ~/.gitconfig", "files": {"model.py": hostile(prelude(project, no_leftovers, GLOBAL), scale=2.5)}},
        {"description": "honest", "files": better(2.5, 3)},
        env=env,
    )
    rows = guard.check(result, no_leftovers)
    assert gitconfig.read_bytes() == before
    not_kept(rows, [1], sandbox, "<your git config ~/.gitconfig>")
    assert rows[2]["status"] == "keep", reasons(rows)


# --- the parts, each on its own ------------------------------------------------------------------


def test_every_git_call_names_its_dirs_and_switches_off_commands(tmp_path: Path) -> None:
    """A worktree whose ``.git`` link was rewritten and whose repository config plants an
    fsmonitor: the driver's git still works on the right repository and runs nothing."""
    from pytest_autoresearch.store.gitguard import RepoGuard
    from pytest_autoresearch.store.gitstate import Repository

    repo_path = tmp_path / "repo"
    env = {**os.environ, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}
    for args in (["init", "-q", "-b", "main", str(repo_path)], ["-C", str(repo_path), "commit", "-q", "--allow-empty", "-m", "i"]):
        subprocess.run(["git", *args], check=True, env=env, capture_output=True)
    repo = Repository(repo_path)
    worktree = repo.add_worktree(repo_path / "wt", repo.head())
    repo.guard = RepoGuard(repo.paths, configs={})
    marker = tmp_path / "ran"
    (worktree.path / ".git").write_text(f"gitdir: {repo_path / '.git'}\n")
    with open(repo_path / ".git" / "config", "a") as f:
        f.write(f"[core]\n\tfsmonitor = \"touch {marker}\"\n")
    assert worktree.changed_tracked() == []
    worktree.reset(repo.head())
    assert not marker.exists()
    assert worktree.restore_links() == ["the worktree's .git link"]
    assert repo.guard.take() == ["your repository's .git/config"]
    assert (worktree.path / ".git").read_text() == f"gitdir: {worktree.paths.git_dir}\n"


def test_the_sandbox_binds_the_worktree_link_read_only(tmp_path: Path) -> None:
    from pytest_autoresearch.system.sandbox import bwrap_args

    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text("gitdir: /elsewhere\n")
    args = bwrap_args(repo_root=tmp_path, worktree=worktree, frozen=[], writable=[], readable=[], cwd=worktree)
    link = str(worktree / ".git")
    assert ["--ro-bind", link, link] == args[args.index(link) - 1 : args.index(link) + 2]
    assert args.index(link) > args.index(str(worktree))  # bound over the read-write worktree


# --- a cmd: agent, which runs in the home worktree -----------------------------------------------

CMD_AGENT = """\
import pathlib, sys
link = pathlib.Path(".git")
meta = pathlib.Path(link.read_text().split(":", 1)[1].strip())
common = (meta / (meta / "commondir").read_text().strip()).resolve()
link.write_text(f"gitdir: {common}\\n")  # the agent's own git, and the driver's, would now be your repository's
model = pathlib.Path("model.py")
model.write_text(model.read_text().replace("SCALE = 1.0", "SCALE = 2.5"))
print("a better scale")
"""


def test_a_command_agent_that_points_its_worktree_at_your_repository(project: Project) -> None:
    """A ``cmd:`` agent edits the model (a real gain) and rewrites the home worktree's ``.git``:
    the driver reads its change through the worktree's own git dirs, puts the link back before
    resetting the worktree, and the trial is ``tamper``."""
    import shlex
    import sys

    project.init()
    project.write({"notes.txt": "staged, not committed\n"})
    project.git("add", "notes.txt")
    guard = Guard(project)
    script = project.outside / "agent.py"
    script.write_text(CMD_AGENT)
    result = project.loop("--autoresearch-agent=cmd:" + shlex.join([sys.executable, str(script)]), "--autoresearch-trials=1")
    rows = guard.check(result, "no-process-of-this-test")
    assert rows[1]["status"] == "tamper" and "<the worktree's .git link>" in rows[1]["reason"], reasons(rows)


# --- several workers: a trial reaches the other worktrees too ------------------------------------

EVERY_LINK = '''
for other in sorted(HERE.parent.glob("worktree*")):
    attempt(lambda: (other / ".git").write_text(f"gitdir: {COMMON}\\n"))
    attempt(lambda: (pathlib.Path((other / ".git").read_text().split(":", 1)[1].strip()) / "HEAD").write_text("ref: refs/heads/main\\n"))
'''


def test_with_two_workers_a_trial_rewrites_every_worktrees_link(project: Project, no_leftovers: str) -> None:
    """With two workers (no sandbox), the candidate points every worktree's ``.git`` (the home
    worktree's, the other worker's, its own) at your repository while another trial runs: the
    driver's git on each of them still works on the right one, each is put back before the
    driver uses it, and the attacker is ``tamper``."""
    project.init()
    project.write({"notes.txt": "staged, not committed\n"})
    project.git("add", "notes.txt")
    guard = Guard(project)
    result = project.loop(
        project.replay(
            {"description": "rewrites every link", "files": {"model.py": hostile(prelude(project, no_leftovers, EVERY_LINK), scale=2.5)}},
            {"description": "honest", "files": better(2.4)},
            {"description": "honest too", "files": better(2.5, 3)},
        ),
        "--autoresearch-trials=3",
        "--autoresearch-workers=2",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = {int(r["trial"]): r for r in project.rows()}  # logged in finishing order
    assert rows[1]["status"] == "tamper" and "<the worktree's .git link>" in rows[1]["reason"], rows
    assert project.snapshot() == guard.containment.before, "your checkout or index changed"
    assert guard.containment.git_state() == guard.containment.git_before
    assert git_dir_files(project) == guard.files and project.git("rev-parse", "refs/heads/main") == guard.main
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1
    kept = [r for r in rows.values() if r["status"] == "keep"]
    assert all(r["description"].startswith("honest") for r in kept), rows
    if kept:  # what the attacker left in the home worktree is repaired before the re-score, not blamed on it
        assert "did not reproduce" not in result.stdout.str(), result.stdout.str()


# --- the worktree folder itself replaced ---------------------------------------------------------

SWAP_FOLDER = '''
def swap():
    HERE.rename(HERE.parent / "moved")
    HERE.symlink_to(COMMON.parent, target_is_directory=True)  # your checkout, in the worktree's place
attempt(swap)
'''


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_the_worktree_folder_swapped_for_a_link_to_your_checkout(project: Project, sandbox: bool, no_leftovers: str) -> None:
    """The candidate moves its worktree away and leaves a symlink to your checkout in its place:
    the driver's reset and clean there would rewrite your files. Without the sandbox the run
    stops, saying why, with your checkout untouched; with it the worktree, a mount point, cannot
    be moved, and the trial is parked for review."""
    project.init()
    project.write({"notes.txt": "staged, not committed\n"})
    project.git("add", "notes.txt")
    guard = Guard(project)
    result = loop(
        project, sandbox,
        {"description": "swaps the worktree", "files": {"model.py": hostile(prelude(project, no_leftovers, SWAP_FOLDER), scale=2.5)}},
    )
    if sandbox:
        rows = guard.check(result, no_leftovers)
        not_kept(rows, [1], True, "")
        return
    rows = guard.check(result, no_leftovers, ret=4)
    assert [r["status"] for r in rows] == ["baseline"]
    assert "was replaced (moved away, or made a symlink) during a trial" in result.stdout.str() + result.stderr.str()
