"""Proposals: the surface check every agent's answer goes through, and unified diffs.

Expected file texts are written out literally (or built by plain string edits of the
original), never by running the parser under test a second time.
"""

from __future__ import annotations

import pytest

from pytest_autoresearch.proposals.diffs import PatchError, apply_unified_diff
from pytest_autoresearch.proposals.proposal import Proposal, check, from_patch
from pytest_autoresearch.core.text import one_line
from pytest_autoresearch.proposals.surface import Surface

# --- check() -----------------------------------------------------------------------------------

SURFACE = Surface(["src/*.py", "config/**"])
CURRENT = {
    "src/model.py": "LR = 0.1\n",
    "src/util.py": "def f():\n    return 1\n",
    "config/train.toml": "epochs = 10\n",
    "README.md": "# readme\n",
    "tests/test_model.py": "def test(): pass\n",
}


def current(path: str) -> str | None:
    return CURRENT.get(path)


def test_check_accepts_an_in_surface_change() -> None:
    changes, reason = check(Proposal("lower lr", {"src/model.py": "LR = 0.05\n"}), SURFACE, current)
    assert reason is None
    assert changes == {"src/model.py": "LR = 0.05\n"}


def test_check_accepts_a_new_file_the_glob_admits() -> None:
    changes, reason = check(Proposal("new", {"src/extra.py": "X = 1\n"}), SURFACE, current)
    assert reason is None
    assert changes == {"src/extra.py": "X = 1\n"}


def test_check_returns_only_the_effective_changes() -> None:
    proposal = Proposal(
        "tweak",
        {
            "src/model.py": "LR = 0.05\n",
            "src/util.py": CURRENT["src/util.py"],  # unchanged
            "config/train.toml": "epochs = 20\n",
        },
    )
    changes, reason = check(proposal, SURFACE, current)
    assert reason is None
    assert changes == {"src/model.py": "LR = 0.05\n", "config/train.toml": "epochs = 20\n"}


def test_check_normalises_the_paths_it_returns() -> None:
    changes, reason = check(Proposal("d", {"./src//model.py": "LR = 0.2\n"}), SURFACE, current)
    assert reason is None
    assert changes == {"src/model.py": "LR = 0.2\n"}


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "tests/test_model.py",
        "src/sub/model.py",  # `*` does not reach into a subfolder
        "../outside/src/model.py",
        "src/../../src/model.py",
        "../src/model.py",
        "/src/model.py",
        "/etc/passwd",
        "C:/src/model.py",
    ],
)
def test_check_rejects_paths_outside_the_surface(path: str) -> None:
    changes, reason = check(Proposal("d", {path: "x = 1\n"}), SURFACE, current)
    assert changes == {}
    assert reason is not None
    assert "outside the mutable surface" in reason
    assert path in reason


def test_check_rejects_the_whole_proposal_if_one_path_is_outside() -> None:
    proposal = Proposal("d", {"src/model.py": "LR = 0.05\n", "tests/test_model.py": "pass\n"})
    changes, reason = check(proposal, SURFACE, current)
    assert changes == {}
    assert reason is not None and "tests/test_model.py" in reason


@pytest.mark.parametrize("path", [".git/config", ".git/hooks/pre-commit", "./.git/HEAD", ".git"])
def test_check_rejects_git_internals_even_when_the_surface_admits_everything(path: str) -> None:
    changes, reason = check(Proposal("d", {path: "x\n"}), Surface(["**", ".git/**"]), lambda p: None)
    assert changes == {}
    assert reason is not None and path in reason


@pytest.mark.parametrize("path", ["vendor/lib/.git/config", ".GIT/config"])
def test_check_rejects_any_git_directory(path: str) -> None:
    changes, reason = check(Proposal("d", {path: "x\n"}), Surface(["**"]), lambda p: None)
    assert changes == {}
    assert reason is not None and path in reason


def test_check_rejects_deletions() -> None:
    changes, reason = check(Proposal("d", {"src/util.py": None}), SURFACE, current)
    assert changes == {}
    assert reason is not None
    assert "deletes" in reason and "src/util.py" in reason


@pytest.mark.parametrize("content", [b"LR = 0.05\n", 42, ["LR = 0.05\n"]])
def test_check_rejects_content_that_is_not_text(content: object) -> None:
    changes, reason = check(Proposal("d", {"src/model.py": content}), SURFACE, current)  # type: ignore[dict-item]
    assert changes == {}
    assert reason is not None
    assert "not text" in reason and "src/model.py" in reason


def test_check_rejects_an_empty_proposal() -> None:
    changes, reason = check(Proposal("nothing"), SURFACE, current)
    assert changes == {}
    assert reason == "the proposal changes no file"


def test_check_rejects_a_proposal_identical_to_the_current_files() -> None:
    proposal = Proposal("same", {"src/model.py": CURRENT["src/model.py"], "src/util.py": CURRENT["src/util.py"]})
    changes, reason = check(proposal, SURFACE, current)
    assert changes == {}
    assert reason == "the proposal leaves every file as it is"


def test_check_reports_the_proposals_own_error() -> None:
    proposal = Proposal("broken", {"src/model.py": "LR = 0.05\n"}, error="the agent answered gibberish")
    assert check(proposal, SURFACE, current) == ({}, "the agent answered gibberish")


def test_one_line_flattens_and_truncates() -> None:
    assert one_line("a\tb\n\n  c\r\n") == "a b c"
    long = one_line("x" * 500, limit=20)
    assert long == "x" * 17 + "..."
    assert len(long) == 20


# --- unified diffs -----------------------------------------------------------------------------

MODEL = "import math\n\nLR = 0.1\nEPOCHS = 10\n\n\ndef train():\n    return math.sqrt(LR)\n"
UTIL = "def f():\n    return 1\n"
FILES = {"src/model.py": MODEL, "src/util.py": UTIL}


def read(path: str) -> str | None:
    return FILES.get(path)


GIT_DIFF = """\
diff --git a/src/model.py b/src/model.py
index 3b18e51..a9b1c2d 100644
--- a/src/model.py
+++ b/src/model.py
@@ -1,6 +1,6 @@
 import math
 
-LR = 0.1
+LR = 0.05
 EPOCHS = 10
 
 
"""

MODEL_LR_005 = "import math\n\nLR = 0.05\nEPOCHS = 10\n\n\ndef train():\n    return math.sqrt(LR)\n"


def test_git_format_diff_applies() -> None:
    assert apply_unified_diff(GIT_DIFF, read) == {"src/model.py": MODEL_LR_005}


def test_from_patch_builds_a_proposal() -> None:
    proposal = from_patch("lower lr", GIT_DIFF, read)
    assert proposal == Proposal("lower lr", {"src/model.py": MODEL_LR_005})
    assert proposal.error is None


def test_plain_diff_without_prefixes_applies() -> None:
    patch = (
        "--- src/util.py\t2024-05-01 10:00:00.000000000 +0200\n"
        "+++ src/util.py\t2024-05-01 10:01:00.000000000 +0200\n"
        "@@ -1,2 +1,2 @@\n"
        " def f():\n"
        "-    return 1\n"
        "+    return 2\n"
    )
    assert apply_unified_diff(patch, read) == {"src/util.py": "def f():\n    return 2\n"}


def test_blank_context_lines_without_their_space_still_apply() -> None:
    # editors and language models often strip the lone space of an empty context line
    patch = "--- a/src/model.py\n+++ b/src/model.py\n@@ -1,4 +1,4 @@\n import math\n\n-LR = 0.1\n+LR = 0.05\n EPOCHS = 10\n"
    assert apply_unified_diff(patch, read) == {"src/model.py": MODEL_LR_005}


LONG = "".join(f"line {n}\n" for n in range(1, 21))


def test_multiple_hunks_apply() -> None:
    patch = """\
--- a/long.txt
+++ b/long.txt
@@ -2,3 +2,3 @@
 line 2
-line 3
+LINE THREE
 line 4
@@ -15,4 +15,5 @@
 line 15
 line 16
+inserted
 line 17
-line 18
+line eighteen
"""
    expected = LONG.replace("line 3\n", "LINE THREE\n").replace("line 17\n", "inserted\nline 17\n")
    expected = expected.replace("line 18\n", "line eighteen\n")
    assert apply_unified_diff(patch, {"long.txt": LONG}.get) == {"long.txt": expected}


def test_multiple_files_apply() -> None:
    patch = """\
diff --git a/src/model.py b/src/model.py
index 3b18e51..a9b1c2d 100644
--- a/src/model.py
+++ b/src/model.py
@@ -3,2 +3,2 @@
-LR = 0.1
+LR = 0.05
 EPOCHS = 10
diff --git a/src/util.py b/src/util.py
index 1111111..2222222 100644
--- a/src/util.py
+++ b/src/util.py
@@ -1,2 +1,2 @@
 def f():
-    return 1
+    return 2
"""
    assert apply_unified_diff(patch, read) == {
        "src/model.py": MODEL_LR_005,
        "src/util.py": "def f():\n    return 2\n",
    }


@pytest.mark.parametrize("start", [1, 2, 5, 7, 9])
def test_hunks_whose_line_numbers_are_a_few_lines_off_still_apply(start: int) -> None:
    # the change is really at line 5
    patch = f"--- a/long.txt\n+++ b/long.txt\n@@ -{start},3 +{start},3 @@\n line 4\n-line 5\n+line five\n line 6\n"
    assert apply_unified_diff(patch, {"long.txt": LONG}.get) == {"long.txt": LONG.replace("line 5\n", "line five\n")}


def test_an_offset_hunk_goes_to_the_nearest_match() -> None:
    text = "x\nsame\nx\ny\nx\nsame\nx\n"
    patch = "--- a/t\n+++ b/t\n@@ -5,3 +5,3 @@\n x\n-same\n+changed\n x\n"
    assert apply_unified_diff(patch, {"t": text}.get) == {"t": "x\nsame\nx\ny\nx\nchanged\nx\n"}


MISMATCH = """\
--- a/src/util.py
+++ b/src/util.py
@@ -1,2 +1,2 @@
 def g():
-    return 1
+    return 2
"""


def test_a_hunk_that_does_not_match_raises_patch_error() -> None:
    with pytest.raises(PatchError, match=r"hunk 1 of src/util.py does not match"):
        apply_unified_diff(MISMATCH, read)


def test_a_hunk_that_does_not_match_gives_an_invalid_proposal() -> None:
    proposal = from_patch("try", MISMATCH, read)
    assert proposal.description == "try"
    assert proposal.files == {}
    assert proposal.error is not None
    assert proposal.error.startswith("the patch does not apply")
    assert "src/util.py" in proposal.error


def test_nothing_is_applied_when_a_later_file_does_not_match() -> None:
    # the first file alone would apply; the second does not, so the proposal keeps neither
    patch = GIT_DIFF + MISMATCH
    with pytest.raises(PatchError):
        apply_unified_diff(patch, read)
    proposal = from_patch("both", patch, read)
    assert proposal.files == {}
    assert proposal.error is not None and "src/util.py" in proposal.error
    assert FILES == {"src/model.py": MODEL, "src/util.py": UTIL}


def test_a_later_hunk_that_does_not_match_applies_nothing() -> None:
    patch = """\
--- a/long.txt
+++ b/long.txt
@@ -2,3 +2,3 @@
 line 2
-line 3
+LINE THREE
 line 4
@@ -15,2 +15,2 @@
 line 15
-line sixteen
+line 16!
"""
    with pytest.raises(PatchError, match="hunk 2 of long.txt"):
        apply_unified_diff(patch, {"long.txt": LONG}.get)
    assert from_patch("d", patch, {"long.txt": LONG}.get).files == {}


def test_new_file_from_dev_null() -> None:
    patch = """\
diff --git a/src/new.py b/src/new.py
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/src/new.py
@@ -0,0 +1,2 @@
+A = 1
+B = 2
"""
    assert apply_unified_diff(patch, read) == {"src/new.py": "A = 1\nB = 2\n"}


def test_deletion_to_dev_null_gives_none_and_check_refuses_it() -> None:
    patch = """\
diff --git a/src/util.py b/src/util.py
deleted file mode 100644
index 1111111..0000000
--- a/src/util.py
+++ /dev/null
@@ -1,2 +0,0 @@
-def f():
-    return 1
"""
    assert apply_unified_diff(patch, read) == {"src/util.py": None}
    changes, reason = check(from_patch("rm", patch, read), Surface(["src/*.py"]), read)
    assert changes == {}
    assert reason is not None and "src/util.py" in reason


def test_adding_the_missing_newline_at_end_of_file() -> None:
    patch = "--- a/m\n+++ b/m\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+B\n"
    assert apply_unified_diff(patch, {"m": "a\nb"}.get) == {"m": "a\nB\n"}


def test_removing_the_newline_at_end_of_file() -> None:
    patch = "--- a/m\n+++ b/m\n@@ -1,2 +1,2 @@\n a\n-B\n+B\n\\ No newline at end of file\n"
    assert apply_unified_diff(patch, {"m": "a\nB\n"}.get) == {"m": "a\nB"}


def test_a_context_line_without_newline_stays_without() -> None:
    patch = "--- a/m\n+++ b/m\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n"
    assert apply_unified_diff(patch, {"m": "a\nb"}.get) == {"m": "A\nb"}


CRLF = "a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\n"
CRLF_PATCH = "--- a/w.txt\n+++ b/w.txt\n@@ -3,3 +3,3 @@\n c\n-d\n+D\n e\n"


def test_crlf_files_keep_their_line_endings_outside_the_hunks() -> None:
    new = apply_unified_diff(CRLF_PATCH, {"w.txt": CRLF}.get)["w.txt"]
    assert new is not None
    assert new.startswith("a\r\nb\r\n")
    assert new.endswith("f\r\ng\r\n")
    assert [line.rstrip("\r\n") for line in new.splitlines(keepends=True)] == ["a", "b", "c", "D", "e", "f", "g"]


def test_crlf_context_lines_inside_a_hunk_keep_their_line_endings() -> None:
    new = apply_unified_diff(CRLF_PATCH, {"w.txt": CRLF}.get)["w.txt"]
    assert new is not None
    lines = new.splitlines(keepends=True)
    assert lines[2] == "c\r\n"
    assert lines[4] == "e\r\n"


def test_git_diff_of_a_crlf_file_gives_a_crlf_file() -> None:
    patch = "--- a/w.txt\n+++ b/w.txt\n@@ -3,3 +3,3 @@\n c\r\n-d\r\n+D\r\n e\r\n"
    assert apply_unified_diff(patch, {"w.txt": CRLF}.get) == {"w.txt": "a\r\nb\r\nc\r\nD\r\ne\r\nf\r\ng\r\n"}


def test_removing_a_line_that_starts_with_two_dashes() -> None:
    original = "CREATE TABLE t (\n-- old comment\n  id INTEGER\n);\n"
    patch = """\
--- a/schema.sql
+++ b/schema.sql
@@ -1,4 +1,4 @@
 CREATE TABLE t (
--- old comment
+-- new comment
   id INTEGER
 );
"""
    assert apply_unified_diff(patch, {"schema.sql": original}.get) == {
        "schema.sql": "CREATE TABLE t (\n-- new comment\n  id INTEGER\n);\n"
    }


def test_zero_context_insertion_goes_after_the_named_line() -> None:
    patch = "diff --git a/n b/n\nindex 94ebaf9..c808d9a 100644\n--- a/n\n+++ b/n\n@@ -3,0 +4 @@\n+X\n"
    assert apply_unified_diff(patch, {"n": "1\n2\n3\n4\n"}.get) == {"n": "1\n2\n3\nX\n4\n"}


def test_a_file_with_a_form_feed_line_can_be_patched() -> None:
    original = "import os\n\x0c\ndef f():\n    return 1\n"
    patch = "--- a/f.py\n+++ b/f.py\n@@ -2,3 +2,3 @@\n \x0c\n def f():\n-    return 1\n+    return 2\n"
    assert apply_unified_diff(patch, {"f.py": original}.get) == {"f.py": "import os\n\x0c\ndef f():\n    return 2\n"}


@pytest.mark.parametrize(
    ("old", "new"),
    [("a/../x.py", "b/../x.py"), ("../x.py", "../x.py"), ("a/src/model.py", "b/../../x.py"), ("/etc/passwd", "/etc/passwd")],
)
def test_a_path_escaping_the_repository_is_refused(old: str, new: str) -> None:
    patch = f"--- {old}\n+++ {new}\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(PatchError, match="leaves the repository"):
        apply_unified_diff(patch, lambda p: "a\n")
    proposal = from_patch("escape", patch, lambda p: "a\n")
    assert proposal.files == {}
    assert proposal.error is not None and "leaves the repository" in proposal.error


def test_a_new_file_escaping_the_repository_is_refused() -> None:
    patch = "--- /dev/null\n+++ b/../evil.py\n@@ -0,0 +1 @@\n+x = 1\n"
    with pytest.raises(PatchError, match=r"\.\./evil\.py"):
        apply_unified_diff(patch, read)


def test_text_without_file_headers_is_refused() -> None:
    with pytest.raises(PatchError, match="no file headers"):
        apply_unified_diff("I would lower the learning rate.\n-LR = 0.1\n+LR = 0.05\n", read)
    assert from_patch("prose", "just prose", read).error is not None


def test_a_malformed_hunk_header_is_refused() -> None:
    patch = "--- a/src/util.py\n+++ b/src/util.py\n@@ one two @@\n def f():\n"
    with pytest.raises(PatchError, match="malformed hunk header"):
        apply_unified_diff(patch, read)


def test_patching_a_file_that_does_not_exist_is_refused() -> None:
    patch = "--- a/src/ghost.py\n+++ b/src/ghost.py\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(PatchError, match="src/ghost.py"):
        apply_unified_diff(patch, read)


def test_dev_null_on_both_sides_is_refused() -> None:
    with pytest.raises(PatchError, match="/dev/null on both sides"):
        apply_unified_diff("--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+x\n", read)
