"""Tolerant unified diffs, as language models write them, and the shared line matcher.

Expected texts are written out literally; the strict mode must keep refusing what it refused.
"""

from __future__ import annotations

import pytest

from pytest_autoresearch.proposals.diffs import EXACT, INDENTATION, TRAILING_WHITESPACE, Match, PatchError, apply_unified_diff, find_matches, reindent

MODEL = """\
import math


class Model:
    def __init__(self, lr):
        self.lr = lr

    def step(self, grad):
        return self.lr * grad
"""


def tolerant(patch: str, files: dict[str, str]) -> dict[str, str | None]:
    return apply_unified_diff(patch, files.get, tolerant=True)


# --- the matcher -------------------------------------------------------------------------------


def test_find_matches_prefers_exact_lines() -> None:
    lines = ["a\n", "  b\n", "a  \n", "b\n"]
    assert find_matches(lines, ["a", "b"]) == [Match(2, TRAILING_WHITESPACE)]
    assert find_matches(lines, ["a  ", "b"]) == [Match(2, EXACT)]
    assert find_matches(lines, ["b"]) == [Match(3, EXACT)]


def test_find_matches_ignores_line_endings_at_the_exact_level() -> None:
    assert find_matches(["x\r\n", "y\r\n"], ["x", "y"]) == [Match(0, EXACT)]


def test_find_matches_finds_a_uniform_indentation_shift() -> None:
    lines = ["def f():\n", "    if x:\n", "        y()\n", "\n", "    z()\n"]
    assert find_matches(lines, ["if x:", "    y()", "", "z()"]) == [Match(1, INDENTATION, ("", "    "))]
    assert find_matches(lines, ["            y()"]) == [Match(2, INDENTATION, ("    ", ""))]


def test_find_matches_refuses_a_shift_that_is_not_uniform() -> None:
    lines = ["def f():\n", "    if x:\n", "        y()\n"]
    assert find_matches(lines, ["if x:", "y()"]) == []


def test_find_matches_returns_every_place_at_the_best_level() -> None:
    lines = ["x = 1\n", "    x = 1\n", "x = 1\n"]
    assert find_matches(lines, ["x = 1"]) == [Match(0, EXACT), Match(2, EXACT)]
    assert find_matches(lines, ["x = 1"], floor=1) == [Match(2, EXACT)]
    assert find_matches(lines, ["  x = 1"]) == [Match(0, INDENTATION, ("  ", "")), Match(1, INDENTATION, ("", "  ")), Match(2, INDENTATION, ("  ", ""))]


def test_find_matches_of_nothing_is_nothing() -> None:
    assert find_matches(["a\n"], []) == []
    assert find_matches(["a\n"], ["a", "b"]) == []


def test_reindent_moves_non_blank_lines_only() -> None:
    assert reindent("x = 1", ("", "    ")) == "    x = 1"
    assert reindent("        x = 1", ("    ", "")) == "    x = 1"
    assert reindent("  x = 1", ("    ", "")) == "x = 1"
    assert reindent("", ("", "    ")) == ""


# --- hunk counts -------------------------------------------------------------------------------

WRONG_COUNTS = """\
--- a/src/model.py
+++ b/src/model.py
@@ -8,2 +8,2 @@
     def step(self, grad):
-        return self.lr * grad
+        grad = max(-1.0, min(1.0, grad))
+        return self.lr * grad
"""

CLIPPED = MODEL.replace("        return self.lr * grad\n", "        grad = max(-1.0, min(1.0, grad))\n        return self.lr * grad\n")


def test_strict_mode_still_refuses_wrong_counts() -> None:
    too_many = WRONG_COUNTS.replace("@@ -8,2 +8,2 @@", "@@ -8,2 +8,4 @@")
    with pytest.raises(PatchError, match="shorter than its header"):
        apply_unified_diff(too_many, {"src/model.py": MODEL}.get)
    assert tolerant(too_many, {"src/model.py": MODEL}) == {"src/model.py": CLIPPED}


def test_wrong_hunk_counts_are_recounted() -> None:
    assert tolerant(WRONG_COUNTS, {"src/model.py": MODEL}) == {
        "src/model.py": (
            "import math\n\n\nclass Model:\n    def __init__(self, lr):\n        self.lr = lr\n\n"
            "    def step(self, grad):\n        grad = max(-1.0, min(1.0, grad))\n        return self.lr * grad\n"
        )
    }


def test_counts_that_claim_too_many_lines_are_recounted() -> None:
    patch = "--- a/src/model.py\n+++ b/src/model.py\n@@ -6,9 +6,9 @@\n         self.lr = lr\n-\n+        self.steps = 0\n     def step(self, grad):\n"
    assert tolerant(patch, {"src/model.py": MODEL}) == {"src/model.py": MODEL.replace("lr = lr\n\n", "lr = lr\n        self.steps = 0\n")}


def test_a_wrong_count_in_the_first_hunk_does_not_swallow_the_second() -> None:
    patch = """\
--- a/long.txt
+++ b/long.txt
@@ -2,2 +2,2 @@
 line 2
-line 3
+LINE THREE
 line 4
@@ -15,3 +15,3 @@
 line 15
-line 16
+LINE SIXTEEN
 line 17
"""
    long = "".join(f"line {n}\n" for n in range(1, 21))
    expected = long.replace("line 3\n", "LINE THREE\n").replace("line 16\n", "LINE SIXTEEN\n")
    assert tolerant(patch, {"long.txt": long}) == {"long.txt": expected}


def test_a_header_without_line_numbers_applies_where_the_hunk_is_unique() -> None:
    patch = "--- a/src/model.py\n+++ b/src/model.py\n@@ ... @@\n import math\n+import random\n"
    assert tolerant(patch, {"src/model.py": MODEL}) == {"src/model.py": "import math\nimport random\n" + MODEL[len("import math\n") :]}


def test_a_header_without_line_numbers_must_be_unambiguous() -> None:
    patch = "--- a/t\n+++ b/t\n@@ @@\n-x\n+y\n"
    with pytest.raises(PatchError, match="hunk 1 of t matches 2 places"):
        tolerant(patch, {"t": "x\na\nx\n"})


def test_prose_after_a_raw_diff_ends_the_hunk() -> None:
    patch = WRONG_COUNTS + "\nThis clips the gradient before the update.\n"
    assert tolerant(patch, {"src/model.py": MODEL}) == {"src/model.py": CLIPPED}


def test_counts_that_include_a_trailing_empty_line_still_apply() -> None:
    # the last context line lost its space, or the counts took the separator for one
    patch = "--- a/src/model.py\n+++ b/src/model.py\n@@ -6,4 +6,4 @@\n         self.lr = lr\n\n-    def step(self, grad):\n+    def step(self, grad, scale=1.0):\n\n"
    assert tolerant(patch, {"src/model.py": MODEL}) == {"src/model.py": MODEL.replace("step(self, grad)", "step(self, grad, scale=1.0)")}


def test_correct_counts_are_preferred_over_the_body() -> None:
    # removed and added lines that look like a file header stay content when the counts say so
    patch = "--- a/s.sql\n+++ b/s.sql\n@@ -1,2 +1,2 @@\n--- old\n+++ new\n x\n"
    assert tolerant(patch, {"s.sql": "-- old\nx\n"}) == {"s.sql": "++ new\nx\n"}


# --- line matching -----------------------------------------------------------------------------


def test_blank_context_lines_without_their_space_count_as_blank_context() -> None:
    patch = "--- a/src/model.py\n+++ b/src/model.py\n@@ -6,3 +6,3 @@\n         self.lr = lr\n\n-    def step(self, grad):\n+    def step(self, grad, scale=1.0):\n"
    assert tolerant(patch, {"src/model.py": MODEL}) == {"src/model.py": MODEL.replace("step(self, grad)", "step(self, grad, scale=1.0)")}


def test_drifted_indentation_is_shifted_back_in_added_lines() -> None:
    # the model copied the method without its class indentation
    patch = """\
--- a/src/model.py
+++ b/src/model.py
@@ -8,2 +8,3 @@
 def step(self, grad):
-    return self.lr * grad
+    grad = max(-1.0, min(1.0, grad))
+    return self.lr * grad
"""
    assert tolerant(patch, {"src/model.py": MODEL}) == {"src/model.py": CLIPPED}


def test_trailing_whitespace_in_the_file_does_not_stop_a_hunk() -> None:
    text = "a = 1   \nb = 2\t\nc = 3\n"
    patch = "--- a/t.py\n+++ b/t.py\n@@ -1,3 +1,3 @@\n a = 1\n-b = 2\n+b = 20\n c = 3\n"
    assert tolerant(patch, {"t.py": text}) == {"t.py": "a = 1   \nb = 20\nc = 3\n"}


def test_an_exact_match_beats_a_drifted_one() -> None:
    text = "if a:\n    x = 1\nx = 1\n"
    patch = "--- a/t\n+++ b/t\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    assert tolerant(patch, {"t": text}) == {"t": "if a:\n    x = 1\nx = 2\n"}


LONG = "".join(f"row {n % 5}\n" for n in range(60))


def test_a_repeated_hunk_goes_to_the_match_nearest_its_line_number() -> None:
    patch = "--- a/t\n+++ b/t\n@@ -33,1 +33,1 @@\n-row 2\n+ROW\n"
    lines = LONG.splitlines(keepends=True)
    lines[32] = "ROW\n"
    assert tolerant(patch, {"t": LONG}) == {"t": "".join(lines)}


def test_a_repeated_hunk_far_from_its_line_number_is_ambiguous() -> None:
    text = "".join(f"row {n}\n" for n in range(100)) + "x\n" + "".join(f"more {n}\n" for n in range(30)) + "x\n"
    patch = "--- a/t\n+++ b/t\n@@ -1,1 +1,1 @@\n-x\n+y\n"
    with pytest.raises(PatchError, match="hunk 1 of t matches 2 places, none near its line number"):
        tolerant(patch, {"t": text})


def test_a_unique_hunk_far_from_its_line_number_still_applies() -> None:
    text = "".join(f"row {n}\n" for n in range(100)) + "x\n"
    patch = "--- a/t\n+++ b/t\n@@ -1,1 +1,1 @@\n-x\n+y\n"
    assert tolerant(patch, {"t": text}) == {"t": text[:-2] + "y\n"}


def test_a_hunk_that_matches_nowhere_names_its_first_line() -> None:
    patch = "--- a/src/model.py\n+++ b/src/model.py\n@@ -8,2 +8,2 @@\n     def step(self, g):\n-        return g\n+        return 2 * g\n"
    with pytest.raises(PatchError, match=r"hunk 1 of src/model.py does not match the current file \(its first line: 'def step\(self, g\):'\)"):
        tolerant(patch, {"src/model.py": MODEL})


# --- line endings and new files ----------------------------------------------------------------


def test_added_lines_take_the_crlf_of_the_file() -> None:
    text = "a\r\nb\r\nc\r\n"
    patch = "--- a/w.txt\n+++ b/w.txt\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n+B2\n c\n"
    assert tolerant(patch, {"w.txt": text}) == {"w.txt": "a\r\nB\r\nB2\r\nc\r\n"}


def test_a_file_without_final_newline_keeps_none_when_the_diff_does_not_say() -> None:
    patch = "--- a/m\n+++ b/m\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    assert tolerant(patch, {"m": "a\nb"}) == {"m": "a\nB"}
    assert apply_unified_diff(patch, {"m": "a\nb"}.get) == {"m": "a\nB\n"}  # strict: as written


def test_the_no_newline_marker_still_rules_in_tolerant_mode() -> None:
    patch = "--- a/m\n+++ b/m\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+B\n"
    assert tolerant(patch, {"m": "a\nb"}) == {"m": "a\nB\n"}


def test_a_new_file_may_fill_an_empty_one_only_in_tolerant_mode() -> None:
    patch = "--- /dev/null\n+++ b/src/new.py\n@@ -0,0 +1,2 @@\n+A = 1\n+B = 2\n"
    assert tolerant(patch, {"src/new.py": ""}) == {"src/new.py": "A = 1\nB = 2\n"}
    with pytest.raises(PatchError, match="exists already"):
        apply_unified_diff(patch, {"src/new.py": ""}.get)
    with pytest.raises(PatchError, match="exists already"):
        tolerant(patch, {"src/new.py": "X = 0\n"})


def test_tolerant_mode_still_refuses_paths_outside_the_repository() -> None:
    patch = "--- a/../x.py\n+++ b/../x.py\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(PatchError, match="leaves the repository"):
        tolerant(patch, {"../x.py": "a\n"})


def test_strict_mode_refuses_a_hunk_longer_than_its_header() -> None:
    """Strict parsing must not drop the lines a wrong count leaves over."""
    from pytest_autoresearch.proposals.diffs import PatchError, apply_unified_diff

    diff = "--- a/m.py\n+++ b/m.py\n@@ -1,1 +1,1 @@\n-A = 1\n+A = 2\n+B = 3\n"
    with pytest.raises(PatchError, match="longer than its header says"):
        apply_unified_diff(diff, {"m.py": "A = 1\n"}.get)
    assert apply_unified_diff(diff, {"m.py": "A = 1\n"}.get, tolerant=True) == {"m.py": "A = 2\nB = 3\n"}
