"""Attacks on what only the driver writes: its refs and its run folder.

A candidate that genuinely improves the score (so a loop that missed the attack would keep it)
also, at run time (when the trial's tests import ``model``), moves the run's branch to a commit
that rewrites the frozen evaluator, deletes, moves or adds one of the run's refs, forges or
rewrites a record of ``audit.jsonl``, or rewrites an earlier trial's log or result file. Each
is ``tamper``, never kept; the ref or file is put back (the branch at the last kept commit,
audit.jsonl verifying by its hash chain, the trial files as the audit trail hashed them); and
the summary says what is true. Every test runs without and with ``autoresearch_sandbox``: in
the sandbox the repository and the run folder are read-only or not there at all (a
repository under /tmp or the home folder is hidden), so the attempt fails (the candidate's run
crashes) and nothing changes. The invariants of ``test_containment.py`` hold
after every run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import Project
from test_containment import PERFECT_FITNESS_TEST, Containment, better, bwrap_works, hostile, reasons

from pytest_autoresearch.store.audit import AuditTrail, verify_audit

SANDBOX = [pytest.param(False, id="plain"), pytest.param(True, id="sandbox")]

#: Import-time code for the attacks on git: ``git(...)`` in the trial's worktree, with an index
#: of its own (the worktree's stays clean, so only the ref check can see the attack), and the
#: user's repository found through the worktree's common git dir. Any failure (the sandbox's
#: read-only repository) raises, so the attempt is visible as a crashed run.
GIT = '''
import subprocess, tempfile
ENV = dict(os.environ, GIT_INDEX_FILE=os.path.join(tempfile.mkdtemp(), "index"), GIT_AUTHOR_NAME="x",
           GIT_AUTHOR_EMAIL="x@x", GIT_COMMITTER_NAME="x", GIT_COMMITTER_EMAIL="x@x")
def git(*args, text=None):
    return subprocess.run(["git", *args], cwd=HERE, env=ENV, input=text, capture_output=True, text=True, check=True).stdout.strip()
COMMON = git("rev-parse", "--path-format=absolute", "--git-common-dir")
def in_repo(*args):
    return git("--git-dir", COMMON, *args)
'''

FORGE_COMMIT = f'''
git("read-tree", "HEAD")
blob = git("hash-object", "-w", "--stdin", text={PERFECT_FITNESS_TEST!r})
git("update-index", "--cacheinfo", f"100644,{{blob}},tests/test_fitness.py")
FORGED = git("commit-tree", git("write-tree"), "-p", "HEAD", "-m", "the objective, replaced")
'''

MOVE_BRANCH = GIT + FORGE_COMMIT + 'in_repo("update-ref", "refs/heads/autoresearch/t", FORGED)\n'
DELETE_TRIAL_REF = GIT + 'in_repo("update-ref", "-d", "refs/autoresearch/t/trials/000")\n'
MOVE_TRIAL_REF = GIT + FORGE_COMMIT + 'in_repo("update-ref", "refs/autoresearch/t/trials/000", FORGED)\n'
ADD_REVIEW_REF = GIT + FORGE_COMMIT + 'in_repo("update-ref", "refs/autoresearch/t/review/001", FORGED)\n'

RUN = 'RUN = HERE.parent  # .autoresearch/t, the run folder\n'
FORGE_AUDIT = RUN + '''
with open(RUN / "audit.jsonl", "r+") as f:  # the run's own file (in the sandbox there is none to open)
    f.seek(0, 2)
    f.write(json.dumps({"trial": 99, "status": "keep", "score": 0.0}) + "\\n")
'''
REWRITE_AUDIT = RUN + '''
path = RUN / "audit.jsonl"
lines = path.read_text().splitlines(keepends=True)
first = json.loads(lines[0])
first["score"] = 0.0
first["description"] = "a perfect baseline"
lines[0] = json.dumps(first, sort_keys=True) + "\\n"
path.write_text("".join(lines))
'''
# the same length and the old mtime: only the ctime (which user code cannot set) moves
SAME_SIZE_AUDIT = RUN + '''
path = RUN / "audit.jsonl"
st = path.stat()
data = path.read_bytes().replace(b'"status": "baseline"', b'"status": "keep____"', 1)
path.write_bytes(data)
os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
'''
REWRITE_LOG = RUN + '(RUN / "trials" / "000.log").write_text("forged: the baseline failed every test\\n")\n'
REWRITE_RESULT = RUN + '''
path = RUN / "trials" / "001.result.json"
result = json.loads(path.read_text())
result["forged"] = True
path.write_text(json.dumps(result))
'''
DELETE_LOG = RUN + '(RUN / "trials" / "001.log").unlink()\n'


def loop(project: Project, sandbox: bool, *proposals: dict[str, object]) -> pytest.RunResult:
    if sandbox and not bwrap_works():
        pytest.skip("autoresearch_sandbox needs a working bubblewrap (bwrap)")
    extra = ["-o", "autoresearch_sandbox=true"] if sandbox else []
    return project.loop(project.replay(*proposals), f"--autoresearch-trials={len(proposals)}", *extra)


def attempted(rows: list[dict[str, str]], attacks: list[int], sandbox: bool, why: str) -> None:
    """Each attacking trial is a tamper naming ``why``; in the sandbox its attempt fails
    (a crash), and it is not kept either way."""
    for n in attacks:
        row = rows[n]
        if sandbox:
            assert row["status"] == "crash", (n, row["status"], row["reason"])
        else:
            assert row["status"] == "tamper" and why in row["reason"], (n, row["status"], row["reason"])


def audit_of(project: Project) -> list[dict[str, object]]:
    path = project.path / ".autoresearch" / "t" / "audit.jsonl"
    assert verify_audit(path) is None, "audit.jsonl's hash chain is broken"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    rows = project.rows()
    assert [(r["trial"], r["status"], r["commit"]) for r in records] == [(int(r["trial"]), r["status"], r["commit"] or None) for r in rows]
    return records


def files_match_the_audit(project: Project, records: list[dict[str, object]]) -> None:
    """Every trial file the audit trail hashed holds what it held when its trial was logged."""
    folder = project.path / ".autoresearch" / "t"
    for record in records:
        files = record["files"]
        assert isinstance(files, dict)
        for rel, sha in files.items():
            assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == sha, rel


# --- refs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_moving_the_branch_to_a_commit_that_replaces_the_objective(project: Project, sandbox: bool) -> None:
    """The candidate points ``refs/heads/autoresearch/t`` at a commit whose fitness test
    reports 0.0, and scores better; then an honest trial gains too."""
    project.init()
    guard = Containment(project)
    result = loop(
        project, sandbox,
        {"description": "moves the branch", "files": {"model.py": hostile(MOVE_BRANCH, scale=2.5)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows][2:] == ["keep"], reasons(rows)
    attempted(rows, [1], sandbox, "<the run's refs: refs/heads/autoresearch/t>")
    assert project.git("rev-parse", "refs/heads/autoresearch/t") == rows[2]["commit"]
    out = result.stdout.str()
    assert f"branch autoresearch/t is at {rows[2]['commit'][:10]} (1 kept commit on main)" in out
    assert f"2 trials: 1 keep, 1 {rows[1]['status']}" in out
    assert "fitness(0.0)" not in project.git("show", "refs/heads/autoresearch/t:tests/test_fitness.py")
    files_match_the_audit(project, audit_of(project))


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_deleting_moving_and_adding_the_runs_refs(project: Project, sandbox: bool) -> None:
    """The candidate deletes ``refs/autoresearch/t/trials/000``, moves it, or adds a review
    ref of its own; each scores better than the last."""
    project.init()
    guard = Containment(project)
    result = loop(
        project, sandbox,
        {"description": "deletes trial 0's ref", "files": {"model.py": hostile(DELETE_TRIAL_REF, scale=2.0)}},
        {"description": "moves trial 0's ref", "files": {"model.py": hostile(MOVE_TRIAL_REF, scale=2.25)}},
        {"description": "adds a review ref", "files": {"model.py": hostile(ADD_REVIEW_REF, scale=2.4)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result)  # every trial ref is where its row says, and only those exist
    assert rows[4]["status"] == "keep", reasons(rows)
    attempted(rows, [1, 2], sandbox, "<the run's refs: refs/autoresearch/t/trials/000>")
    attempted(rows, [3], sandbox, "<the run's refs: refs/autoresearch/t/review/001>")
    assert project.git("for-each-ref", "refs/autoresearch/t/review") == ""
    assert project.git("rev-parse", "refs/autoresearch/t/trials/000") == project.git("rev-parse", "main")
    assert "branch autoresearch/t is at" in result.stdout.str()
    audit_of(project)


def test_a_branch_made_a_symbolic_ref_is_restored_without_moving_its_target(project: Project) -> None:
    """The candidate turns the run's branch into a symbolic ref to ``main``: restoring it must
    not move ``main`` (a plain update-ref would write through the link)."""
    project.init()
    guard = Containment(project)
    symref = GIT + 'in_repo("symbolic-ref", "refs/heads/autoresearch/t", "refs/heads/main")\n'
    main = project.git("rev-parse", "main")
    result = loop(
        project, False,
        {"description": "links the branch", "files": {"model.py": hostile(symref, scale=2.5)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "tamper", "keep"], reasons(rows)
    assert project.git("rev-parse", "main") == main
    assert project.git("symbolic-ref", "-q", "refs/heads/autoresearch/t", check=False) == ""


# --- audit.jsonl ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_forging_and_rewriting_audit_records(project: Project, sandbox: bool) -> None:
    """The candidate appends a forged ``keep`` record, rewrites the baseline's record, or
    rewrites it to the same length and puts the old mtime back; each scores better."""
    project.init()
    guard = Containment(project)
    result = loop(
        project, sandbox,
        {"description": "forges a record", "files": {"model.py": hostile(FORGE_AUDIT, scale=2.0)}},
        {"description": "rewrites a record", "files": {"model.py": hostile(REWRITE_AUDIT, scale=2.25)}},
        {"description": "same size, old mtime", "files": {"model.py": hostile(SAME_SIZE_AUDIT, scale=2.4)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result)
    assert rows[4]["status"] == "keep", reasons(rows)
    attempted(rows, [1, 2, 3], sandbox, "<audit.jsonl>")
    records = audit_of(project)  # the chain verifies; one record per row, none forged
    assert records[0]["status"] == "baseline" and records[0]["score"] == float(rows[0]["score"])
    assert all(r["trial"] != 99 for r in records)
    files_match_the_audit(project, records)


# --- the trial files -----------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_rewriting_an_earlier_trials_files(project: Project, sandbox: bool) -> None:
    """After an honest keep, candidates rewrite the baseline's log, rewrite trial 1's result
    file, or delete trial 1's log; each scores better."""
    project.init()
    guard = Containment(project)
    folder = project.path / ".autoresearch" / "t" / "trials"
    result = loop(
        project, sandbox,
        {"description": "honest", "files": better(2.0)},
        {"description": "rewrites the baseline's log", "files": {"model.py": hostile(REWRITE_LOG, scale=2.25)}},
        {"description": "rewrites a result file", "files": {"model.py": hostile(REWRITE_RESULT, scale=2.4)}},
        {"description": "deletes a log", "files": {"model.py": hostile(DELETE_LOG, scale=2.45)}},
        {"description": "honest", "files": better(2.5, 3)},
    )
    rows = guard.check(result)
    assert rows[1]["status"] == "keep" and rows[5]["status"] == "keep", reasons(rows)
    attempted(rows, [2], sandbox, "<trials/000.log>")
    attempted(rows, [3], sandbox, "<trials/001.result.json>")
    attempted(rows, [4], sandbox, "<trials/001.log>")
    records = audit_of(project)
    assert {"trials/000.log", "trials/000.result.json"} <= set(records[0]["files"])  # type: ignore[arg-type]
    assert {"trials/001.log", "trials/001.result.json"} <= set(records[1]["files"])  # type: ignore[arg-type]
    files_match_the_audit(project, records)  # restored byte for byte
    assert "forged" not in (folder / "000.log").read_text()
    assert "forged" not in json.loads((folder / "001.result.json").read_text())


# --- the chain, read back --------------------------------------------------------------------------


def test_the_audit_chain_names_the_first_broken_line(tmp_path: Path) -> None:
    """Each record carries the SHA-256 of the line before it (``prev_sha256``, null on the
    first): recomputed here, then broken by an edit, a deleted line and a cut last line."""
    trail = AuditTrail(tmp_path, None, "replay", None)
    for n in range(4):
        trail.append({"trial": n, "status": "keep", "score": float(n)})
    path = tmp_path / "audit.jsonl"
    assert verify_audit(path) is None
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    previous = None
    for line in lines[:-1]:
        record = json.loads(line)
        assert record["prev_sha256"] == previous
        previous = hashlib.sha256(line).hexdigest()
    good = path.read_bytes()

    path.write_bytes(good.replace(b'"score": 1.0', b'"score": 0.5'))
    assert verify_audit(path) == 3  # line 2 was edited: line 3 no longer names it
    path.write_bytes(b"\n".join(lines[:1] + lines[2:]))
    assert verify_audit(path) == 2  # line 2 is gone: the new line 2 names another line
    path.write_bytes(good[:-10])
    assert verify_audit(path) == 4  # a cut last line
    path.write_bytes(b"not json\n" + good)
    assert verify_audit(path) == 1
    path.write_bytes(good)

    # the driver's own check: nothing read while nothing changed; an edit seen and undone
    assert trail.intact()
    path.write_bytes(good.replace(b'"score": 3.0', b'"score": 0.0'))
    assert not trail.intact()
    trail.restore()
    assert path.read_bytes() == good and trail.intact()

    resumed = AuditTrail(tmp_path, None, "replay", None)
    assert resumed.adopt() is None
    resumed.append({"trial": 4, "status": "keep", "score": 4.0})
    assert verify_audit(path) is None and path.read_bytes().startswith(good)
