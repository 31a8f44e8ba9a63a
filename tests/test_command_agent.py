"""``cmd:COMMAND``: an external coding agent run in the trial's worktree, whose edits are the proposal.

The commands here are small Python scripts that behave like ``claude -p`` would: read the
prompt, edit files in the current directory, print a last line. Everything else is real:
the loop, git, the worktree and the surface check.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import GIT_ENV, Project, default_files, processes_with

from pytest_autoresearch.agents import AgentError
from pytest_autoresearch.agents.command import Changes, CommandAgent, worktree_changes
from pytest_autoresearch.proposals.surface import Surface

PREAMBLE = """\
import json, os, pathlib, subprocess, sys, time
model = pathlib.Path("model.py")
def edit(old, new):
    model.write_text(model.read_text().replace(old, new))
def seen(**facts):
    with open(os.environ["SEEN"], "a") as f:
        f.write(json.dumps(facts) + "\\n")
"""


def agent(project: Project, body: str, *args: str) -> str:
    """The ``--autoresearch-agent`` option for a script running ``body`` (after PREAMBLE)."""
    script = project.outside / "agent.py"
    script.write_text(PREAMBLE + textwrap.dedent(body), encoding="utf-8")
    return "--autoresearch-agent=cmd:" + shlex.join([sys.executable, str(script), *args])


def seen(project: Project) -> list[dict[str, object]]:
    path = project.outside / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def loop(project: Project, *args: str) -> pytest.RunResult:
    return project.loop(*args, env={"SEEN": str(project.outside / "seen.jsonl")})


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def test_a_command_that_reads_the_prompt_on_stdin_and_edits_the_model(project: Project) -> None:
    project.init()
    option = agent(
        project,
        """
        prompt = sys.stdin.read()
        trial = os.environ["AUTORESEARCH_TRIAL"]
        assert prompt == pathlib.Path(os.environ["AUTORESEARCH_PROMPT_FILE"]).read_text()
        assert f"trial {trial}" in prompt, prompt
        assert "def predict(x):" in prompt and "model.py" in prompt
        seen(cwd=os.getcwd(), prompt_file=os.environ["AUTORESEARCH_PROMPT_FILE"])
        if trial == "1":
            edit("SCALE = 1.0", "SCALE = 2.5")
            print("thinking about it...\\n\\nsteeper slope\\n")
        else:
            edit("OFFSET = 0", "OFFSET = 3")
            print("shift   the\\tline up")
        """,
    )
    before = project.snapshot()
    result = loop(project, option, "--autoresearch-trials=2")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep"], rows
    assert [r["description"] for r in rows[1:]] == ["steeper slope", "shift the line up"]
    assert float(rows[2]["score"]) < float(rows[1]["score"]) < float(rows[0]["score"])
    branch_model = project.git("show", "autoresearch/t:model.py")
    assert "SCALE = 2.5" in branch_model and "OFFSET = 3" in branch_model
    assert project.snapshot() == before  # the user's checkout is untouched
    result.stdout.fnmatch_lines(["*agent cmd: *agent.py*"])

    facts = seen(project)
    assert Path(facts[0]["cwd"]).resolve() == (project.path / ".autoresearch/t/worktree").resolve()
    prompt_file = Path(facts[0]["prompt_file"])
    assert not prompt_file.resolve().is_relative_to(project.path.resolve())
    assert not prompt_file.parent.exists()  # close() removed its temporary files

    trials = project.path / ".autoresearch/t/trials"
    second = (trials / "002.prompt.md").read_text()
    assert "| 1 | keep |" in second and "steeper slope" in second and "SCALE = 2.5" in second
    assert "steeper slope" in (trials / "001.answer.md").read_text()


def test_the_prompt_file_placeholder(project: Project) -> None:
    project.init()
    option = agent(
        project,
        """
        assert sys.stdin.read() == ""  # the prompt is in the file, not on stdin
        path = sys.argv[1].removeprefix("--message-file=")
        assert path == os.environ["AUTORESEARCH_PROMPT_FILE"]
        assert "trial 1" in pathlib.Path(path).read_text()
        edit("SCALE = 1.0", "SCALE = 2.5")
        print("read the prompt from a file")
        """,
        "--message-file={prompt_file}",
    )
    result = loop(project, option, "--autoresearch-trials=1")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep"], rows
    assert rows[1]["description"] == "read the prompt from a file"
    assert "SCALE = 2.5" in project.git("show", "autoresearch/t:model.py")


def test_a_command_that_edits_a_frozen_test_is_rejected(project: Project) -> None:
    project.init()
    option = agent(
        project,
        """
        edit("SCALE = 1.0", "SCALE = 2.5")
        pathlib.Path("tests/test_gate.py").write_text("def test_nothing():\\n    pass\\n")
        print("also simplified a test")
        """,
    )
    before = project.snapshot()
    result = loop(project, option, "--autoresearch-trials=1")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"], rows
    assert "outside the mutable surface" in rows[1]["reason"] and "tests/test_gate.py" in rows[1]["reason"]
    assert project.git("rev-parse", "autoresearch/t") == project.git("rev-parse", "HEAD")
    assert project.snapshot() == before


def test_a_failing_command_is_an_invalid_trial_whose_reason_reaches_the_next_prompt(project: Project) -> None:
    project.init()
    option = agent(
        project,
        """
        edit("SCALE = 1.0", "SCALE = 2.5")
        print("half way there")
        print("\\n".join(f"noise {i}" for i in range(20)), file=sys.stderr)
        print("boom: the model is on fire", file=sys.stderr)
        sys.exit(3)
        """,
    )
    result = loop(project, option, "--autoresearch-trials=2")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid", "invalid"], rows
    reason = rows[1]["reason"]
    assert reason.startswith("the command exited with status 3:") and "boom: the model is on fire" in reason
    assert "noise 16" in reason and "noise 15" not in reason  # the last lines only
    assert rows[1]["description"] == "half way there"
    assert "boom: the model is on fire" in (project.path / ".autoresearch/t/trials/002.prompt.md").read_text()


def test_a_command_past_its_timeout_is_killed_with_its_children(project: Project, no_leftovers: str) -> None:
    project.init()
    option = agent(
        project,
        f"""
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {no_leftovers!r}])
        edit("SCALE = 1.0", "SCALE = 2.5")
        time.sleep(60)
        """,
    )
    start = time.monotonic()
    result = loop(project, option, "--autoresearch-trials=1", "-o", "autoresearch_agent_timeout=2")
    assert result.ret == 0, output(result)
    assert time.monotonic() - start < 30
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"], rows
    assert rows[1]["reason"] == "the command did not finish within 2s and was killed"
    assert rows[1]["description"] == f"cmd: {Path(sys.executable).name}"
    result.stdout.fnmatch_lines(["*autoresearch: trial 1: *did not finish within 2s; killed it*"])
    assert project.git("rev-parse", "autoresearch/t") == project.git("rev-parse", "HEAD")


def test_a_command_that_changes_nothing_and_leaves_a_child_behind(project: Project, no_leftovers: str) -> None:
    project.init()
    option = agent(
        project,
        f"""
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {no_leftovers!r}],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("I looked and it is fine")
        """,
    )
    result = loop(project, option, "--autoresearch-trials=1")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"], rows
    assert rows[1]["reason"] == "the command changed no file"
    assert rows[1]["description"] == "I looked and it is fine"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("no-such-coding-agent --yes", "agent cmd:no-such-coding-agent --yes: program 'no-such-coding-agent' not found or not executable*"),
        ("claude -p 'unterminated", "agent cmd:claude -p 'unterminated: cannot parse the command*"),
    ],
)
def test_a_command_that_cannot_run_stops_the_loop_before_the_baseline(project: Project, command: str, message: str) -> None:
    project.init()
    result = project.loop(f"--autoresearch-agent=cmd:{command}", "--autoresearch-trials=1")
    assert result.ret != 0
    result.stderr.fnmatch_lines([f"ERROR: autoresearch: {message}"])
    assert "INTERNALERROR" not in output(result)
    assert not (project.path / ".autoresearch").exists()  # nothing ran, nothing was left


def test_ctrl_c_while_the_command_runs_kills_it(project: Project, no_leftovers: str) -> None:
    project.init()
    ready = project.outside / "ready"
    option = agent(
        project,
        f"""
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {no_leftovers!r}])
        pathlib.Path({str(ready)!r}).write_text("")
        time.sleep(60)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", "--autoresearch-tag=t",
         option, "--autoresearch-trials=1"],
        cwd=project.path,
        env={**os.environ, **GIT_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=30)[0] if proc.poll() is not None else "the agent never started"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
        proc.wait()
    assert "KeyboardInterrupt" in out, out
    assert not processes_with(no_leftovers)
    assert project.statuses() == ["baseline"]


#: A command that behaves as aider does without its flags: it edits the model, writes its chat
#: and input histories and a binary repository-map cache at the worktree's root, and commits.
AIDER_LIKE = """
trial = os.environ["AUTORESEARCH_TRIAL"]
scratch = pathlib.Path(sys.argv[1])
assert scratch == pathlib.Path(os.environ["AUTORESEARCH_SCRATCH"]) and scratch.is_dir()
seen(trial=trial, scratch=str(scratch), before=sorted(p.name for p in scratch.iterdir()))
(scratch / f"llm-history-{trial}.txt").write_text("what the model said")
root = pathlib.Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True).stdout.strip())
with open(root / ".aider.chat.history.md", "a") as f:
    f.write("# aider chat started\\n")
(root / ".aider.input.history").write_text("+make it better\\n")
(root / ".aider.tags.cache.v4").mkdir(exist_ok=True)
(root / ".aider.tags.cache.v4" / "cache.db").write_bytes(b"SQLite format 3\\x00\\x01")
if trial == "1":
    edit("SCALE = 1.0", "SCALE = 2.5")
    subprocess.run(["git", "commit", "-q", "-am", "aider: steeper slope"], check=True)
elif trial == "2":
    edit("OFFSET = 0", "OFFSET = 3")
print("Applied edit to model.py")
"""


def test_a_tools_own_files_and_commits_never_reach_the_proposal_or_the_repository(project: Project) -> None:
    project.init()
    option = agent(project, AIDER_LIKE, "{scratch}")
    before = project.snapshot()
    refs_before = project.git("for-each-ref", "--format=%(refname) %(objectname)")
    result = loop(project, option, "--autoresearch-trials=3")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep", "invalid"], rows
    assert rows[3]["reason"] == (
        "the command changed no file (only files of its own: .aider.chat.history.md, .aider.input.history, .aider.tags.cache.v4/)"
    )
    # said once, naming the files and the way to keep them out
    notes = [line for line in result.stdout.lines if "files of its own into the worktree" in line]
    assert len(notes) == 1, result.stdout.lines
    assert "(.aider.chat.history.md, .aider.input.history, .aider.tags.cache.v4/)" in notes[0] and "{scratch}" in notes[0]

    # the branch holds the model's edits and nothing else, in the loop's commits, not the tool's
    assert project.git("diff", "--name-only", "main", "autoresearch/t") == "model.py"
    for ref in ("autoresearch/t", "refs/autoresearch/t/trials/001", "refs/autoresearch/t/trials/002"):
        assert project.git("ls-tree", "-r", "--name-only", ref).splitlines() == ["model.py", "pyproject.toml", "tests/test_fitness.py", "tests/test_gate.py"]
    assert "aider: steeper slope" not in project.git("log", "--all", "--format=%s")  # the tool's commit is on no ref
    # the user's checkout, index and every ref they had are as they were
    assert project.snapshot() == before
    refs_after = project.git("for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    assert [r for r in refs_after if "autoresearch/" not in r] == refs_before.splitlines()
    assert not list(project.path.glob(".aider*"))

    # one scratch folder for the session, outside the checkout, gone when the loop ends
    facts = seen(project)
    assert [f["before"] for f in facts] == [[], ["llm-history-1.txt"], ["llm-history-1.txt", "llm-history-2.txt"]]
    scratch = Path(facts[0]["scratch"])
    assert not scratch.resolve().is_relative_to(project.path.resolve()) and not scratch.exists()


def test_a_tracked_file_with_a_tools_name_is_an_edit_like_any_other(project: Project) -> None:
    project.init({**default_files(), ".aider.conf.yml": "auto-commits: false\n"})
    option = agent(
        project,
        """
        edit("SCALE = 1.0", "SCALE = 2.5")
        pathlib.Path(".aider.conf.yml").write_text("auto-commits: true\\n")
        print("changed the model and the tool's settings")
        """,
    )
    result = loop(project, option, "--autoresearch-trials=1")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"], rows
    assert "outside the mutable surface" in rows[1]["reason"] and ".aider.conf.yml" in rows[1]["reason"]


def test_a_tool_that_adds_its_files_to_gitignore_is_rejected_and_told_why(project: Project) -> None:
    project.init({**default_files(), ".gitignore": "*.pyc\n"})
    option = agent(
        project,
        """
        edit("SCALE = 1.0", "SCALE = 2.5")
        with open(".gitignore", "a") as f:
            f.write(".aider*\\n")
        pathlib.Path(".aider.chat.history.md").write_text("# chat\\n")
        print("Applied edit to model.py")
        """,
    )
    result = loop(project, option, "--autoresearch-trials=1")
    assert result.ret == 0, output(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"], rows
    assert "outside the mutable surface" in rows[1]["reason"] and ".gitignore" in rows[1]["reason"]
    result.stdout.fnmatch_lines(["*trial 1: python* added its own files to .gitignore, which is outside the surface*--no-gitignore*"])


# -- unit level ------------------------------------------------------------------------


def git(path: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose rootdir is its subfolder ``sub``."""
    for rel, text in {"top.txt": "top\n", "sub/a.py": "A = 1\n", "sub/b.py": "B = 1\n", "sub/pkg/c.py": "C = 1\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "initial")
    return tmp_path


def test_changes_are_rootdir_relative_and_nothing_outside_is_dropped(repo: Path) -> None:
    sub = repo / "sub"
    assert worktree_changes(sub) == Changes({})
    (sub / "a.py").write_bytes(b"A = 2\r\n")  # line endings are kept as written
    (sub / "b.py").unlink()
    (sub / "pkg" / "new file.py").write_text("N = 'é'\n")
    (repo / "top.txt").write_text("changed\n")
    (repo / "stray.txt").write_text("new\n")
    git(repo, "mv", "sub/pkg/c.py", "sub/pkg/d.py")  # a rename is a deletion and an addition
    files, error, tool_files = worktree_changes(sub)
    assert error is None and tool_files == ()
    assert files == {
        "a.py": "A = 2\r\n",
        "b.py": None,
        "pkg/new file.py": "N = 'é'\n",
        "pkg/c.py": None,
        "pkg/d.py": "C = 1\n",
        "../top.txt": "changed\n",
        "../stray.txt": "new\n",
    }


def test_committed_changes_count_too(repo: Path) -> None:
    sub = repo / "sub"
    since = git(repo, "rev-parse", "HEAD")
    (sub / "a.py").write_text("A = 3\n")
    git(repo, "commit", "-q", "-am", "the agent committed")
    (sub / "b.py").write_text("B = 3\n")
    assert worktree_changes(sub, since) == Changes({"a.py": "A = 3\n", "b.py": "B = 3\n"})


@pytest.mark.parametrize("data", [b"\x00\x01binary", b"caf\xe9\n"])
def test_a_file_that_is_not_text_is_an_error(repo: Path, data: bytes) -> None:
    (repo / "sub" / "pkg" / "blob.bin").write_bytes(data)
    assert worktree_changes(repo / "sub") == Changes({}, "pkg/blob.bin is not UTF-8 text (binary files cannot be proposed)")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "the command of 'cmd:COMMAND' is empty"),
        ("agent 'open", "cannot parse the command"),
        ("no-such-coding-agent", "program 'no-such-coding-agent' not found"),
        ("./no/such/script.sh --go", "not found or not executable"),
    ],
)
def test_start_refuses_a_command_that_cannot_run(command: str, message: str) -> None:
    with pytest.raises(AgentError, match=message):
        CommandAgent(command, timeout=5).start(None)  # type: ignore[arg-type]
    assert message in (CommandAgent(command, timeout=5).preflight({}) or "")
    assert CommandAgent("git --version", timeout=5).preflight({}) is None


def test_a_tools_own_new_files_are_set_apart_and_not_read(repo: Path) -> None:
    """In a rootdir below the repository root, the tool's files at the root keep their ``../``
    path; a binary cache is not read; a file the surface names is an edit, whatever its name."""
    sub = repo / "sub"
    (sub / "a.py").write_text("A = 2\n")
    (repo / ".aider.chat.history.md").write_text("# chat\n")
    (repo / ".aider.tags.cache.v4").mkdir()
    (repo / ".aider.tags.cache.v4" / "cache.db").write_bytes(b"\x00\x01")
    (sub / ".aider.input.history").write_text("+hi\n")
    (sub / ".aider.notes").write_text("mine\n")
    surface = Surface(["*.py", ".aider.notes"])
    assert worktree_changes(sub, surface=surface) == Changes(
        {"a.py": "A = 2\n", ".aider.notes": "mine\n"},
        None,
        ("../.aider.chat.history.md", "../.aider.tags.cache.v4/cache.db", ".aider.input.history"),
    )
    # without a surface nothing is set apart: the binary cache is what the proposal cannot hold
    assert worktree_changes(sub).error == "../.aider.tags.cache.v4/cache.db is not UTF-8 text (binary files cannot be proposed)"


def test_a_tools_name_on_a_file_the_project_tracks_is_not_set_apart(repo: Path) -> None:
    sub = repo / "sub"
    (sub / ".aider.conf.yml").write_text("x: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "settings")
    since = git(repo, "rev-parse", "HEAD")
    (sub / ".aider.conf.yml").write_text("x: 2\n")
    (sub / ".aider.input.history").write_text("+hi\n")
    git(repo, "add", "sub/.aider.input.history")
    git(repo, "commit", "-q", "-m", "the tool committed its history")
    assert worktree_changes(sub, since, surface=Surface(["*.py"])) == Changes({".aider.conf.yml": "x: 2\n"}, None, (".aider.input.history",))
