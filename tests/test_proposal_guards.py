"""The guards of ``check()`` beyond the surface globs, and the diff headers ``diffs.py`` refuses.

Each rule is tested by the exact reason an agent will read next trial, since that text is
what lets it correct itself. Expected texts are written out literally.
"""

from __future__ import annotations

import dataclasses

import pytest

from pytest_autoresearch.proposals.diffs import PatchError, apply_unified_diff
from pytest_autoresearch.proposals.proposal import Limits, Proposal, check, evolve_regions, from_patch
from pytest_autoresearch.proposals.surface import Surface

EVERYTHING = Surface(["**"])

CURRENT = {
    "model.py": "LR = 0.1\n",
    "util.py": "def f():\n    return 1\n",
    "tests/conftest.py": "import pytest\n",
}


def run_check(files: dict[str, str | None], limits: Limits | None = None, current: dict[str, str] | None = None) -> tuple[dict[str, str | None], str | None]:
    files_now = CURRENT if current is None else current
    proposal = Proposal("d", files)
    if limits is None:
        return check(proposal, EVERYTHING, files_now.get)
    return check(proposal, EVERYTHING, files_now.get, limits)


def reason_of(files: dict[str, str | None], limits: Limits | None = None, current: dict[str, str] | None = None) -> str | None:
    changes, reason = run_check(files, limits, current)
    if reason is not None:
        assert changes == {}
    return reason


# --- Limits ------------------------------------------------------------------------------------


def test_limits_defaults() -> None:
    assert Limits() == Limits(allow_delete=False, max_file_bytes=1_048_576)


def test_limits_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().allow_delete = True  # type: ignore[misc]


def test_check_with_three_arguments_uses_the_default_limits() -> None:
    assert check(Proposal("d", {"util.py": None}), EVERYTHING, CURRENT.get) == check(
        Proposal("d", {"util.py": None}), EVERYTHING, CURRENT.get, Limits()
    )
    assert check(Proposal("d", {"util.py": None}), EVERYTHING, CURRENT.get)[1] is not None


def test_limits_can_be_passed_by_keyword() -> None:
    changes, reason = check(Proposal("d", {"util.py": None}), EVERYTHING, CURRENT.get, limits=Limits(allow_delete=True))
    assert reason is None
    assert changes == {"util.py": None}


# --- binary content ----------------------------------------------------------------------------


def test_nul_bytes_are_binary_content() -> None:
    assert reason_of({"model.py": "LR = 0.1\0\n"}) == "model.py: binary content (NUL bytes) cannot be proposed"


def test_lone_surrogates_are_binary_content() -> None:
    # what reading undecodable bytes with errors="surrogateescape" gives
    reason = reason_of({"model.py": "LR = \udcff\n"})
    assert reason == "model.py: binary content (not valid UTF-8 text at character 5) cannot be proposed"


def test_non_ascii_text_is_fine() -> None:
    changes, reason = run_check({"model.py": "LR = 0.1  # λ, café, 学习率\n"})
    assert reason is None
    assert changes == {"model.py": "LR = 0.1  # λ, café, 学习率\n"}


def test_a_binary_file_echoed_unchanged_is_dropped_not_refused() -> None:
    # only what is written is checked; an unchanged file is never written
    current = {"blob.dat": "a\0b", "model.py": "LR = 0.1\n"}
    changes, reason = run_check({"blob.dat": "a\0b", "model.py": "LR = 0.2\n"}, current=current)
    assert reason is None
    assert changes == {"model.py": "LR = 0.2\n"}


# --- oversized files ---------------------------------------------------------------------------


def test_a_file_over_the_default_limit_is_refused_with_its_size() -> None:
    text = "x" * int(2.3 * 1024 * 1024)
    assert reason_of({"model.py": text}) == "model.py: 2.3 MB exceeds the 1 MB limit (autoresearch_max_file_kb)"


def test_a_file_at_the_limit_is_fine() -> None:
    text = "x" * 1_048_576
    assert run_check({"model.py": text}) == ({"model.py": text}, None)


def test_one_byte_over_the_limit_is_said_in_bytes() -> None:
    reason = reason_of({"model.py": "x" * 1_048_577})
    assert reason == "model.py: 1048577 bytes exceeds the 1048576-byte limit (autoresearch_max_file_kb)"


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    limits = Limits(max_file_bytes=1024)
    assert reason_of({"model.py": "é" * 600}, limits) == "model.py: 1.2 KB exceeds the 1 KB limit (autoresearch_max_file_kb)"
    assert reason_of({"model.py": "e" * 600}, limits) is None


def test_a_custom_limit_applies() -> None:
    limits = Limits(max_file_bytes=10)
    assert reason_of({"model.py": "LR = 0.0001\n"}, limits) == "model.py: 12 bytes exceeds the 10 bytes limit (autoresearch_max_file_kb)"
    assert reason_of({"model.py": "LR = 0.2\n"}, limits) is None


# --- deletions ---------------------------------------------------------------------------------


def test_deletions_are_refused_by_default_and_the_reason_names_the_setting() -> None:
    reason = reason_of({"util.py": None})
    assert reason == "deletes surface files, which is not allowed: util.py (deletions need autoresearch_allow_delete = true)"


def test_deletions_are_allowed_with_allow_delete() -> None:
    assert run_check({"util.py": None, "model.py": "LR = 0.2\n"}, Limits(allow_delete=True)) == (
        {"util.py": None, "model.py": "LR = 0.2\n"},
        None,
    )


def test_deleting_a_file_that_does_not_exist_is_refused_even_with_allow_delete() -> None:
    reason = reason_of({"ghost.py": None}, Limits(allow_delete=True))
    assert reason == "deletes surface files that do not exist: ghost.py"


# --- conftest.py -------------------------------------------------------------------------------

CONFTEST_REASON = (
    ": conftest.py files may never be created, changed or deleted, whatever autoresearch_mutable admits: "
    "they steer pytest itself (fixtures, hooks) and could override the evaluator"
)


@pytest.mark.parametrize("path", ["conftest.py", "src/conftest.py", "a/b/Conftest.py", "CONFTEST.PY"])
def test_creating_a_conftest_is_refused_whatever_the_globs(path: str) -> None:
    assert reason_of({path: "def pytest_collection_modifyitems(items): items.clear()\n"}) == path + CONFTEST_REASON


def test_changing_a_conftest_is_refused() -> None:
    assert reason_of({"tests/conftest.py": "import pytest\nX = 1\n"}) == "tests/conftest.py" + CONFTEST_REASON


def test_deleting_a_conftest_is_refused_even_with_allow_delete() -> None:
    assert reason_of({"tests/conftest.py": None}, Limits(allow_delete=True)) == "tests/conftest.py" + CONFTEST_REASON


def test_a_conftest_echoed_unchanged_is_not_a_change() -> None:
    changes, reason = run_check({"tests/conftest.py": CURRENT["tests/conftest.py"], "model.py": "LR = 0.2\n"})
    assert reason is None
    assert changes == {"model.py": "LR = 0.2\n"}


def test_a_file_merely_named_like_conftest_is_fine() -> None:
    assert reason_of({"my_conftest.py": "X = 1\n", "conftest.py.bak": "X = 1\n"}) is None


# --- rule order --------------------------------------------------------------------------------


def test_paths_outside_the_surface_come_before_conftest() -> None:
    proposal = Proposal("d", {"src/conftest.py": "X = 1\n", "README.md": "x\n"})
    assert check(proposal, Surface(["src/**"]), CURRENT.get)[1] == "touches paths outside the mutable surface: README.md"


def test_conftest_comes_before_deletions() -> None:
    assert reason_of({"util.py": None, "conftest.py": "X = 1\n"}) == "conftest.py" + CONFTEST_REASON


def test_deletions_come_before_content() -> None:
    reason = reason_of({"model.py": "\0", "util.py": None})
    assert reason is not None and reason.startswith("deletes surface files, which is not allowed: util.py")


def test_content_comes_before_evolve_blocks() -> None:
    current = {"a.py": MARKED, "b.py": "x\n"}
    reason = reason_of({"a.py": "changed everywhere\n", "b.py": "\0"}, current=current)
    assert reason == "b.py: binary content (NUL bytes) cannot be proposed"


@pytest.mark.parametrize("order", [("b.py", "a.py"), ("a.py", "b.py")])
def test_the_first_offending_file_is_chosen_by_path_not_by_dict_order(order: tuple[str, str]) -> None:
    files: dict[str, str | None] = {path: "\0" for path in order}
    assert reason_of(files) == "a.py: binary content (NUL bytes) cannot be proposed"


# --- EVOLVE-BLOCK regions ----------------------------------------------------------------------

MARKED = """\
import math
LR = 0.1
# EVOLVE-BLOCK-START
def step(x):
    return x * LR
# EVOLVE-BLOCK-END
EPOCHS = 10
"""


def marked(path: str = "model.py", text: str = MARKED) -> dict[str, str]:
    return {path: text}


def test_evolve_regions_gives_marker_line_numbers() -> None:
    assert evolve_regions(MARKED) == [(3, 6)]
    assert evolve_regions("no markers\n") == []
    assert evolve_regions("") == []


SYNTAXES = [
    ("# EVOLVE-BLOCK-START", "# EVOLVE-BLOCK-END"),
    ("// EVOLVE-BLOCK-START", "// EVOLVE-BLOCK-END"),
    ("-- EVOLVE-BLOCK-START", "-- EVOLVE-BLOCK-END"),
    ("; EVOLVE-BLOCK-START", "; EVOLVE-BLOCK-END"),
    ("<!-- EVOLVE-BLOCK-START -->", "<!-- EVOLVE-BLOCK-END -->"),
    ("    /* EVOLVE-BLOCK-START: the kernel */", "    /* EVOLVE-BLOCK-END */"),
]


def with_syntax(start: str, end: str, body: str = "body", outside: str = "frozen") -> str:
    return f"{outside} 1\n{start}\n{body}\n{end}\n{outside} 2\n{start}\nsecond\n{end}\n"


@pytest.mark.parametrize(("start", "end"), SYNTAXES)
def test_evolve_regions_with_any_comment_syntax(start: str, end: str) -> None:
    assert evolve_regions(with_syntax(start, end)) == [(2, 4), (6, 8)]


@pytest.mark.parametrize(("start", "end"), SYNTAXES)
def test_an_edit_inside_a_region_is_accepted_in_any_syntax(start: str, end: str) -> None:
    new = with_syntax(start, end, body="new body\nand more")
    assert run_check({"f": new}, current={"f": with_syntax(start, end)}) == ({"f": new}, None)


@pytest.mark.parametrize(("start", "end"), SYNTAXES)
def test_an_edit_outside_the_regions_is_refused_in_any_syntax(start: str, end: str) -> None:
    new = with_syntax(start, end, outside="thawed")
    reason = reason_of({"f": new}, current={"f": with_syntax(start, end)})
    assert reason == "f: line 1 is outside the EVOLVE-BLOCK regions and may not change (`frozen 1`)"


def test_an_edit_outside_names_the_current_line_even_after_a_region_grew() -> None:
    new = MARKED.replace("    return x * LR\n", "    y = x * LR\n    return y\n").replace("EPOCHS = 10", "EPOCHS = 20")
    reason = reason_of({"model.py": new}, current=marked())
    assert reason == "model.py: line 7 is outside the EVOLVE-BLOCK regions and may not change (`EPOCHS = 10`)"


def test_an_edit_before_the_region_is_refused() -> None:
    reason = reason_of({"model.py": MARKED.replace("LR = 0.1", "LR = 0.2")}, current=marked())
    assert reason == "model.py: line 2 is outside the EVOLVE-BLOCK regions and may not change (`LR = 0.1`)"


def test_an_emptied_region_is_accepted() -> None:
    new = MARKED.replace("def step(x):\n    return x * LR\n", "")
    assert run_check({"model.py": new}, current=marked()) == ({"model.py": new}, None)


def test_a_changed_marker_line_is_refused() -> None:
    new = MARKED.replace("# EVOLVE-BLOCK-END", "# EVOLVE-BLOCK-END (edited)")
    reason = reason_of({"model.py": new}, current=marked())
    assert reason == "model.py: line 6 is an EVOLVE-BLOCK marker and may not change (`# EVOLVE-BLOCK-END`)"


def test_a_removed_marker_is_refused() -> None:
    new = MARKED.replace("# EVOLVE-BLOCK-END\n", "")
    reason = reason_of({"model.py": new}, current=marked())
    assert reason == (
        "model.py: the new text has unbalanced EVOLVE-BLOCK markers (line 3: EVOLVE-BLOCK-START is never "
        "closed by an EVOLVE-BLOCK-END); keep every marker line as it is"
    )


def test_removing_both_markers_is_refused() -> None:
    new = MARKED.replace("# EVOLVE-BLOCK-START\n", "").replace("# EVOLVE-BLOCK-END\n", "")
    reason = reason_of({"model.py": new}, current=marked())
    assert reason == (
        "model.py: the number of EVOLVE-BLOCK regions must stay 1 (the new text has 0); keep every marker "
        "line as it is and change only the lines between them"
    )


def test_an_added_region_is_refused() -> None:
    new = MARKED + "# EVOLVE-BLOCK-START\nEPOCHS = 20\n# EVOLVE-BLOCK-END\n"
    reason = reason_of({"model.py": new}, current=marked())
    assert reason is not None and "number of EVOLVE-BLOCK regions must stay 1 (the new text has 2)" in reason


def test_a_region_split_in_two_from_inside_is_refused() -> None:
    new = MARKED.replace("    return x * LR\n", "    return x * LR\n# EVOLVE-BLOCK-END\n# EVOLVE-BLOCK-START\n")
    reason = reason_of({"model.py": new}, current=marked())
    assert reason is not None and "must stay 1 (the new text has 2)" in reason


def test_a_nested_marker_added_inside_a_region_is_refused() -> None:
    new = MARKED.replace("    return x * LR\n", "    return x * LR\n# EVOLVE-BLOCK-START\n")
    reason = reason_of({"model.py": new}, current=marked())
    assert reason == (
        "model.py: the new text has unbalanced EVOLVE-BLOCK markers (line 6: EVOLVE-BLOCK-START inside the "
        "block opened at line 3); keep every marker line as it is"
    )


def test_a_line_added_outside_is_refused() -> None:
    reason = reason_of({"model.py": MARKED + "EXTRA = 1\n"}, current=marked())
    assert reason == "model.py: a line is added after line 7, outside the EVOLVE-BLOCK regions (`EXTRA = 1`)"


def test_a_line_removed_outside_is_refused() -> None:
    reason = reason_of({"model.py": MARKED.replace("EPOCHS = 10\n", "")}, current=marked())
    assert reason == "model.py: line 7 is outside the EVOLVE-BLOCK regions and may not be removed (`EPOCHS = 10`)"


def test_a_dropped_final_newline_outside_is_refused() -> None:
    reason = reason_of({"model.py": MARKED.removesuffix("\n")}, current=marked())
    assert reason == (
        "model.py: line 7 is outside the EVOLVE-BLOCK regions and may not change (`EPOCHS = 10`) "
        "(its line ending or final newline changed)"
    )


CRLF = MARKED.replace("\n", "\r\n")


def test_crlf_file_edit_inside_is_accepted() -> None:
    new = CRLF.replace("x * LR", "x * LR * 2")
    assert run_check({"model.py": new}, current=marked(text=CRLF)) == ({"model.py": new}, None)


def test_crlf_file_edit_outside_is_refused_and_the_reason_has_no_carriage_return() -> None:
    reason = reason_of({"model.py": CRLF.replace("EPOCHS = 10", "EPOCHS = 11")}, current=marked(text=CRLF))
    assert reason == "model.py: line 7 is outside the EVOLVE-BLOCK regions and may not change (`EPOCHS = 10`)"


def test_crlf_file_turned_to_lf_outside_the_regions_is_refused() -> None:
    reason = reason_of({"model.py": MARKED}, current=marked(text=CRLF))
    assert reason == (
        "model.py: line 1 is outside the EVOLVE-BLOCK regions and may not change (`import math`) "
        "(its line ending or final newline changed)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\n# EVOLVE-BLOCK-START\nb\n", "line 2: EVOLVE-BLOCK-START is never closed by an EVOLVE-BLOCK-END"),
        ("a\n# EVOLVE-BLOCK-END\nb\n", "line 2: EVOLVE-BLOCK-END without an EVOLVE-BLOCK-START before it"),
        (
            "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n# EVOLVE-BLOCK-END\n",
            "line 2: EVOLVE-BLOCK-START inside the block opened at line 1",
        ),
        ("x  # EVOLVE-BLOCK-START EVOLVE-BLOCK-END\n", "line 1 holds both EVOLVE-BLOCK-START and EVOLVE-BLOCK-END"),
    ],
)
def test_unbalanced_markers_in_the_current_file_are_reported_for_the_user_to_fix(text: str, problem: str) -> None:
    assert evolve_regions(text) is None
    reason = reason_of({"model.py": text + "more\n"}, current=marked(text=text))
    assert reason == f"model.py has unbalanced EVOLVE-BLOCK markers ({problem}); fix the file so that each START has its END"


def test_a_new_file_with_markers_has_no_constraint() -> None:
    assert run_check({"new.py": MARKED}) == ({"new.py": MARKED}, None)


def test_a_file_without_markers_is_open_as_a_whole() -> None:
    assert run_check({"model.py": "anything\n"}) == ({"model.py": "anything\n"}, None)


def test_a_marked_file_may_not_be_deleted_even_with_allow_delete() -> None:
    reason = reason_of({"model.py": None}, Limits(allow_delete=True), current=marked())
    assert reason == "model.py: only its EVOLVE-BLOCK regions may change, so it may not be deleted"


def test_no_effective_change_comes_last() -> None:
    assert reason_of(marked(), current=marked()) == "the proposal leaves every file as it is"


# --- diff headers: modes, symlinks, binary patches ---------------------------------------------

FILES = {"x.py": "a\nb\n", "run.sh": "echo hi\n"}

MODE_ONLY = "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
MODE_AND_HUNK = (
    "diff --git a/x.py b/x.py\nold mode 100644\nnew mode 100755\nindex 1111111..2222222\n"
    "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
)
NEW_SYMLINK = (
    "diff --git a/link b/link\nnew file mode 120000\nindex 0000000..1b2c3d4\n--- /dev/null\n+++ b/link\n"
    "@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n"
)
CHANGED_SYMLINK = (
    "diff --git a/link b/link\nindex 1b2c3d4..5e6f7a8 120000\n--- a/link\n+++ b/link\n"
    "@@ -1 +1 @@\n-x.py\n\\ No newline at end of file\n+/etc/passwd\n\\ No newline at end of file\n"
)
GIT_BINARY = "diff --git a/img.png b/img.png\nindex 1111111..2222222 100644\nGIT binary patch\nliteral 4\nLmZQzU0009300RI3\n\n"
BINARY_DIFFER = "diff --git a/img.png b/img.png\nindex 1111111..2222222 100644\nBinary files a/img.png and b/img.png differ\n"
PLAIN_BINARY_DIFFER = "Binary files a/img.png and b/img.png differ\n"

REFUSED = [
    (MODE_ONLY, "the patch changes the mode of run.sh (old mode 100644, new mode 100755); mode changes are not accepted"),
    (MODE_AND_HUNK, "the patch changes the mode of x.py (old mode 100644, new mode 100755)"),
    (NEW_SYMLINK, "the patch creates a symlink at link; symlinks are not accepted"),
    (CHANGED_SYMLINK, "the patch touches a symlink at link; symlinks are not accepted"),
    (GIT_BINARY, "binary patches are not accepted (img.png has a GIT binary patch)"),
    (BINARY_DIFFER, "binary patches are not accepted (binary files differ: img.png)"),
    (PLAIN_BINARY_DIFFER, "binary patches are not accepted (binary files differ: img.png)"),
]


@pytest.mark.parametrize("tolerant", [False, True])
@pytest.mark.parametrize(("patch", "message"), REFUSED)
def test_unsupported_git_headers_raise_patch_error(patch: str, message: str, tolerant: bool) -> None:
    with pytest.raises(PatchError) as info:
        apply_unified_diff(patch, FILES.get, tolerant=tolerant)
    assert message in str(info.value)


@pytest.mark.parametrize(("patch", "message"), REFUSED)
def test_unsupported_git_headers_give_an_invalid_proposal(patch: str, message: str) -> None:
    proposal = from_patch("d", patch, FILES.get)
    assert proposal.files == {}
    assert proposal.error is not None
    assert proposal.error.startswith("the patch does not apply: ")
    assert message in proposal.error
    assert check(proposal, EVERYTHING, FILES.get) == ({}, proposal.error)


@pytest.mark.parametrize("tolerant", [False, True])
@pytest.mark.parametrize("mode", ["100644", "100755"])
def test_a_new_regular_file_mode_is_fine(mode: str, tolerant: bool) -> None:
    patch = f"diff --git a/new.py b/new.py\nnew file mode {mode}\nindex 0000000..1111111\n--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+X = 1\n"
    assert apply_unified_diff(patch, FILES.get, tolerant=tolerant) == {"new.py": "X = 1\n"}


@pytest.mark.parametrize("tolerant", [False, True])
def test_a_deleted_file_mode_is_fine(tolerant: bool) -> None:
    patch = "diff --git a/x.py b/x.py\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/x.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"
    assert apply_unified_diff(patch, FILES.get, tolerant=tolerant) == {"x.py": None}


@pytest.mark.parametrize("tolerant", [False, True])
def test_the_header_is_blamed_on_the_file_it_precedes(tolerant: bool) -> None:
    patch = (
        "diff --git a/new.sh b/new.sh\nnew file mode 100755\nindex 0000000..1111111\n--- /dev/null\n+++ b/new.sh\n"
        "@@ -0,0 +1 @@\n+echo new\n"
        "diff --git a/x.py b/x.py\nindex 1111111..2222222 100644\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\nindex 3333333..4444444\n"
        "--- a/run.sh\n+++ b/run.sh\n@@ -1 +1 @@\n-echo hi\n+echo ho\n"
    )
    with pytest.raises(PatchError, match=r"changes the mode of run\.sh \(old mode"):
        apply_unified_diff(patch, FILES.get, tolerant=tolerant)


@pytest.mark.parametrize("tolerant", [False, True])
def test_header_like_lines_inside_a_hunk_are_content(tolerant: bool) -> None:
    text = "old mode 100644\nnew mode 120000\nBinary files a and b differ\nkeep\n"
    patch = (
        "diff --git a/notes.txt b/notes.txt\nindex 1111111..2222222 100644\n--- a/notes.txt\n+++ b/notes.txt\n"
        "@@ -1,4 +1,1 @@\n-old mode 100644\n-new mode 120000\n-Binary files a and b differ\n keep\n"
    )
    assert apply_unified_diff(patch, {"notes.txt": text}.get, tolerant=tolerant) == {"notes.txt": "keep\n"}


def test_the_index_line_of_a_regular_file_is_fine() -> None:
    patch = "diff --git a/x.py b/x.py\nindex 1111111..2222222 100755\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    assert apply_unified_diff(patch, FILES.get) == {"x.py": "a\nB\n"}


@pytest.mark.parametrize("tolerant", [False, True])
def test_a_mode_only_header_is_not_blamed_on_the_next_file(tolerant: bool) -> None:
    # a mode-only change has no ---/+++ lines: the next file's headers must not be taken for its own
    patch = MODE_ONLY + "diff --git a/x.py b/x.py\nindex 1111111..2222222 100644\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    with pytest.raises(PatchError, match=r"changes the mode of run\.sh \(old mode 100644, new mode 100755\)"):
        apply_unified_diff(patch, FILES.get, tolerant=tolerant)


@pytest.mark.parametrize("kind", ["rename", "copy"])
def test_renames_and_copies_are_refused_not_half_applied(kind: str) -> None:
    from pytest_autoresearch.proposals.diffs import PatchError, apply_unified_diff

    diff = (
        f"diff --git a/old.py b/new.py\nsimilarity index 90%\n{kind} from old.py\n{kind} to new.py\n"
        "--- a/old.py\n+++ b/new.py\n@@ -1 +1 @@\n-A = 1\n+A = 2\n"
    )
    with pytest.raises(PatchError, match=f"renames or copies a file \\({kind} from old.py\\)"):
        apply_unified_diff(diff, {"old.py": "A = 1\n"}.get)
