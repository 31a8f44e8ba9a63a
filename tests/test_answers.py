"""Language-model answers into proposals: SEARCH/REPLACE blocks, diffs and whole files.

The answers are written the way models write them (prose, fences, drift); the expected file
texts are written out literally, never produced by the parser under test.
"""

from __future__ import annotations

import random

import pytest

from pytest_autoresearch.proposals.answers import ANSWER_FORMAT, parse_answer
from pytest_autoresearch.proposals.proposal import Proposal, check
from pytest_autoresearch.proposals.surface import Surface

MODEL = """\
import math


class Model:
    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr
        self.steps = 0

    def step(self, grad: float) -> float:
        self.steps += 1
        return self.lr * grad


def schedule(epoch: int) -> float:
    return 0.1 * math.exp(-epoch)
"""
CONFIG = "epochs = 10\nbatch = 32\n"
FILES = {"src/model.py": MODEL, "config/train.toml": CONFIG}
REPO = {**FILES, "tests/test_model.py": "def test_model():\n    assert True\n", "README.md": "# demo\n"}
SURFACE = Surface(["src/*.py", "config/*.toml"])

STEP_CLIPPED = MODEL.replace(
    "        self.steps += 1\n        return self.lr * grad\n",
    "        self.steps += 1\n        grad = max(-1.0, min(1.0, grad))\n        return self.lr * grad\n",
)


def parse(answer: str, files: dict[str, str] = FILES, repo: dict[str, str] = REPO) -> Proposal:
    return parse_answer(answer, files, repo.get)


# --- SEARCH/REPLACE blocks ---------------------------------------------------------------------

TYPICAL = """\
I'll clip the gradient before the update. Large gradients make the loss oscillate.

src/model.py
```python
<<<<<<< SEARCH
        self.steps += 1
        return self.lr * grad
=======
        self.steps += 1
        grad = max(-1.0, min(1.0, grad))
        return self.lr * grad
>>>>>>> REPLACE
```
"""


def test_a_typical_search_replace_answer() -> None:
    assert parse(TYPICAL) == Proposal("I'll clip the gradient before the update.", {"src/model.py": STEP_CLIPPED})


@pytest.mark.parametrize(
    "path_line",
    [
        "src/model.py",
        "`src/model.py`",
        "**src/model.py**",
        "# src/model.py",
        "### File: src/model.py",
        "File: `src/model.py`",
        "Path: src/model.py",
        "src/model.py:",
        "**`src/model.py`**:",
        "In `src/model.py`, clip the gradient:",
        "model.py",  # a bare name that ends exactly one surface path
    ],
)
def test_the_path_line_above_a_block_in_any_style(path_line: str) -> None:
    answer = f"Clip the gradient.\n\n{path_line}\n" + TYPICAL[TYPICAL.index("```python") :]
    assert parse(answer) == Proposal("Clip the gradient.", {"src/model.py": STEP_CLIPPED})


def test_the_path_on_the_first_line_inside_the_fence() -> None:
    answer = "Clip it.\n```python\nsrc/model.py\n" + TYPICAL[TYPICAL.index("<<<<<<<") :]
    assert parse(answer) == Proposal("Clip it.", {"src/model.py": STEP_CLIPPED})


def test_the_path_in_the_fence_info_above_a_block() -> None:
    answer = "Clip it.\n```python src/model.py\n" + TYPICAL[TYPICAL.index("<<<<<<<") :]
    assert parse(answer).files == {"src/model.py": STEP_CLIPPED}


def test_several_blocks_in_two_files_apply_in_order() -> None:
    answer = """\
Train longer with a decaying rate.

src/model.py
<<<<<<< SEARCH
def schedule(epoch: int) -> float:
    return 0.1 * math.exp(-epoch)
=======
def schedule(epoch: int) -> float:
    return 0.1 * math.exp(-0.5 * epoch)
>>>>>>> REPLACE

config/train.toml
<<<<<<< SEARCH
epochs = 10
=======
epochs = 20
>>>>>>> REPLACE

src/model.py
<<<<<<< SEARCH
    return 0.1 * math.exp(-0.5 * epoch)
=======
    return 0.2 * math.exp(-0.5 * epoch)
>>>>>>> REPLACE
"""
    assert parse(answer) == Proposal(
        "Train longer with a decaying rate.",
        {
            "src/model.py": MODEL.replace("return 0.1 * math.exp(-epoch)", "return 0.2 * math.exp(-0.5 * epoch)"),
            "config/train.toml": "epochs = 20\nbatch = 32\n",
        },
    )


def test_a_block_without_a_path_continues_the_file_of_the_previous_block() -> None:
    answer = """\
src/model.py
<<<<<<< SEARCH
import math
=======
import math
import random
>>>>>>> REPLACE
<<<<<<< SEARCH
        self.steps = 0
=======
        self.steps = 0
        self.rng = random.Random(0)
>>>>>>> REPLACE
"""
    expected = MODEL.replace("import math\n", "import math\nimport random\n").replace(
        "        self.steps = 0\n", "        self.steps = 0\n        self.rng = random.Random(0)\n"
    )
    assert parse(answer) == Proposal("edit src/model.py", {"src/model.py": expected})


def test_a_block_without_a_path_goes_to_the_only_surface_file() -> None:
    answer = "Smaller batches.\n\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 16\n>>>>>>> REPLACE\n"
    proposal = parse(answer, files={"config/train.toml": CONFIG})
    assert proposal == Proposal("Smaller batches.", {"config/train.toml": "epochs = 10\nbatch = 16\n"})


def test_a_block_without_a_path_is_refused_when_the_surface_has_several_files() -> None:
    answer = "Smaller batches.\n\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 16\n>>>>>>> REPLACE\n"
    proposal = parse(answer)
    assert proposal.files == {}
    assert proposal.error == "SEARCH/REPLACE block 1 has no file path: put the path alone on the line above <<<<<<< SEARCH"


def test_a_crlf_file_stays_crlf() -> None:
    crlf = "epochs = 10\r\nbatch = 32\r\nseed = 1\r\n"
    answer = "config/train.toml\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 64\nwarmup = 2\n>>>>>>> REPLACE\n"
    proposal = parse(answer, files={"config/train.toml": crlf})
    assert proposal.files == {"config/train.toml": "epochs = 10\r\nbatch = 64\r\nwarmup = 2\r\nseed = 1\r\n"}


def test_an_answer_with_windows_newlines_gives_a_unix_file_unix_lines() -> None:
    answer = "Bigger batches.\r\n\r\nconfig/train.toml\r\n<<<<<<< SEARCH\r\nbatch = 32\r\n=======\r\nbatch = 64\r\n>>>>>>> REPLACE\r\n"
    assert parse(answer) == Proposal("Bigger batches.", {"config/train.toml": "epochs = 10\nbatch = 64\n"})


def test_a_search_that_lost_the_method_indentation_is_shifted_back() -> None:
    answer = """\
Clip the gradient.

src/model.py
<<<<<<< SEARCH
def step(self, grad: float) -> float:
    self.steps += 1
    return self.lr * grad
=======
def step(self, grad: float) -> float:
    self.steps += 1

    grad = max(-1.0, min(1.0, grad))
    return self.lr * grad
>>>>>>> REPLACE
"""
    expected = MODEL.replace(
        "        self.steps += 1\n        return self.lr * grad\n",
        "        self.steps += 1\n\n        grad = max(-1.0, min(1.0, grad))\n        return self.lr * grad\n",
    )
    assert parse(answer).files == {"src/model.py": expected}


def test_a_search_indented_too_deep_is_shifted_back() -> None:
    answer = """\
src/model.py
<<<<<<< SEARCH
        def schedule(epoch: int) -> float:
            return 0.1 * math.exp(-epoch)
=======
        def schedule(epoch: int) -> float:
            return 0.05 * math.exp(-epoch)
>>>>>>> REPLACE
"""
    assert parse(answer).files == {"src/model.py": MODEL.replace("return 0.1 * math.exp", "return 0.05 * math.exp")}


def test_trailing_whitespace_does_not_stop_a_search() -> None:
    text = "epochs = 10   \nbatch = 32\t\nseed = 1\n"
    answer = "config/train.toml\n<<<<<<< SEARCH\nepochs = 10\nbatch = 32\n=======\nepochs = 10\nbatch = 8\n>>>>>>> REPLACE\n"
    assert parse(answer, files={"config/train.toml": text}).files == {"config/train.toml": "epochs = 10\nbatch = 8\nseed = 1\n"}


def test_an_exact_match_wins_over_a_drifted_one() -> None:
    text = "if fast:\n    lr = 0.1\nlr = 0.1\n"
    answer = "src/opt.py\n<<<<<<< SEARCH\nlr = 0.1\n=======\nlr = 0.2\n>>>>>>> REPLACE\n"
    assert parse(answer, files={"src/opt.py": text}).files == {"src/opt.py": "if fast:\n    lr = 0.1\nlr = 0.2\n"}


def test_a_search_that_matches_several_places_is_refused() -> None:
    text = "a = 1\nx = 0\nb = 1\nx = 0\nc = 1\nx = 0\n"
    answer = "Reset x.\n\nsrc/opt.py\n<<<<<<< SEARCH\nx = 0\n=======\nx = 1\n>>>>>>> REPLACE\n"
    assert parse(answer, files={"src/opt.py": text}) == Proposal(
        "Reset x.",
        error="SEARCH/REPLACE block 1 (src/opt.py): the SEARCH text matches 3 places in src/opt.py; include more context so that it matches one",
    )


def test_a_search_that_matches_nowhere_names_the_file_and_its_first_line() -> None:
    answer = "src/model.py\n<<<<<<< SEARCH\n\n    def step(self, g):\n        return g\n=======\n    def step(self, g):\n        return 2 * g\n>>>>>>> REPLACE\n"
    assert parse(answer).error == (
        "SEARCH/REPLACE block 1 (src/model.py): the SEARCH text is not in src/model.py "
        "(its first line: 'def step(self, g):'); src/model.py line 9 reads 'def step(self, grad: float) -> float:'; copy the current lines exactly"
    )


def test_one_failing_block_applies_nothing() -> None:
    answer = TYPICAL + "\nconfig/train.toml\n<<<<<<< SEARCH\nepochs = 99\nwarmup = 1\n=======\nepochs = 5\n>>>>>>> REPLACE\n"
    proposal = parse(answer)
    assert proposal.files == {}
    assert proposal.error == (
        "SEARCH/REPLACE block 2 (config/train.toml): the SEARCH text is not in config/train.toml "
        "(its first line: 'epochs = 99'); config/train.toml line 1 reads 'epochs = 10'; copy the current lines exactly; nothing in the answer was applied"
    )


def test_an_edit_to_a_frozen_file_stays_in_the_proposal_so_check_refuses_it() -> None:
    answer = TYPICAL + "\ntests/test_model.py\n<<<<<<< SEARCH\n    assert True\n=======\n    assert 1\n>>>>>>> REPLACE\n"
    proposal = parse(answer)
    assert proposal.files == {"src/model.py": STEP_CLIPPED, "tests/test_model.py": "def test_model():\n    assert 1\n"}
    changes, reason = check(proposal, SURFACE, REPO.get)
    assert changes == {}
    assert reason == "touches paths outside the mutable surface: tests/test_model.py"


def test_an_empty_search_creates_a_new_file() -> None:
    answer = "Add a helper.\n\nsrc/helpers.py\n<<<<<<< SEARCH\n=======\ndef clip(x):\n    return max(-1.0, min(1.0, x))\n>>>>>>> REPLACE\n"
    assert parse(answer) == Proposal("Add a helper.", {"src/helpers.py": "def clip(x):\n    return max(-1.0, min(1.0, x))\n"})


def test_an_empty_search_on_an_existing_file_is_refused() -> None:
    answer = "config/train.toml\n<<<<<<< SEARCH\n=======\nepochs = 5\n>>>>>>> REPLACE\n"
    assert parse(answer).error == (
        "SEARCH/REPLACE block 1 (config/train.toml): an empty SEARCH creates a new file, "
        "but config/train.toml exists; copy the lines to change into SEARCH"
    )


def test_a_file_without_final_newline_keeps_none() -> None:
    answer = "config/train.toml\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 16\n>>>>>>> REPLACE\n"
    assert parse(answer, files={"config/train.toml": "epochs = 10\nbatch = 32"}).files == {"config/train.toml": "epochs = 10\nbatch = 16"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "<<<<<<< SEARCH\nepochs = 10\nepochs = 20\n>>>>>>> REPLACE\n",
            "SEARCH/REPLACE block 1 (config/train.toml) has no ======= line between its SEARCH and REPLACE parts",
        ),
        (
            "<<<<<<< SEARCH\nepochs = 10\n=======\nepochs = 20\n",
            "SEARCH/REPLACE block 1 (config/train.toml) is cut off: the answer ends before its >>>>>>> REPLACE line; keep the answer short",
        ),
        ("<<<<<<< SEARCH\nepochs = 10\n", "SEARCH/REPLACE block 1 (config/train.toml) is cut off: it has no ======= line and no >>>>>>> REPLACE line"),
        (
            "<<<<<<< SEARCH\nepochs = 10\n=======\nepochs = 20\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 1\n>>>>>>> REPLACE\n",
            "SEARCH/REPLACE block 1 (config/train.toml) is not terminated: end it with >>>>>>> REPLACE",
        ),
    ],
)
def test_broken_blocks_are_refused_with_the_reason(body: str, error: str) -> None:
    proposal = parse("Train longer.\n\nconfig/train.toml\n" + body)
    assert proposal == Proposal("Train longer.", error=error)


# --- thinking and descriptions -----------------------------------------------------------------


def test_thinking_is_dropped_with_its_draft_edits() -> None:
    answer = "<think>\nMaybe lower lr?\nconfig/train.toml\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 1\n>>>>>>> REPLACE\n</think>\n\n" + TYPICAL
    assert parse(answer) == Proposal("I'll clip the gradient before the update.", {"src/model.py": STEP_CLIPPED})


def test_a_dangling_end_of_thinking_drops_everything_before_it() -> None:
    answer = "Maybe lower lr. Or batch?\n</think>\n" + TYPICAL
    assert parse(answer).description == "I'll clip the gradient before the update."


def test_unfinished_thinking_is_no_edit() -> None:
    answer = "Let me see.\n<think>\nconfig/train.toml\n<<<<<<< SEARCH\nbatch = 32\n=======\nbatch = 1\n>>>>>>> REPLACE\n"
    assert parse(answer).error == "the answer contains no edit: use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"


@pytest.mark.parametrize(
    ("prose", "description"),
    [
        ("## Idea: **clip** the _gradient_ at 1.0\n\nIt is noisy.", "clip the gradient at 1.0"),
        ("**Idea**\n\nUse a learning_rate of 0.05. It is steadier.", "Use a learning_rate of 0.05."),
        ("Clip   the\tgradient at 1.0 because the\nloss spikes.", "Clip the gradient at 1.0 because the"),
        ("> Lower lr to 0.05! Then train.", "Lower lr to 0.05!"),
        ("1. **Lower** the lr, e.g. to 0.05. Then retrain.", "Lower the lr, e.g. to 0.05."),
        ("- Use `torch.compile`. Faster.", "Use `torch.compile`."),
        ("Try " + "very " * 60 + "hard.", "Try " + "very " * 38 + "ver..."),  # 200 characters
        ("", "edit src/model.py"),
    ],
)
def test_the_description_is_the_first_sentence_of_the_leading_prose(prose: str, description: str) -> None:
    assert parse(prose + "\n\n" + TYPICAL[TYPICAL.index("src/model.py") :]).description == description


def test_prose_alone_is_no_edit() -> None:
    answer = "I think the learning rate is too high. Lowering it to 0.05 should help.\n"
    assert parse(answer) == Proposal(
        "I think the learning rate is too high.",
        error="the answer contains no edit: use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH",
    )


# --- unified diffs -----------------------------------------------------------------------------

DIFF_BODY = """\
diff --git a/src/model.py b/src/model.py
--- a/src/model.py
+++ b/src/model.py
@@ -10,2 +10,2 @@
         self.steps += 1
-        return self.lr * grad
+        grad = max(-1.0, min(1.0, grad))
+        return self.lr * grad
"""


def test_a_diff_in_a_fence_with_wrong_hunk_counts() -> None:
    answer = "Clip the gradient.\n\n```diff\n" + DIFF_BODY + "```\n\nThis keeps updates bounded.\n"
    assert parse(answer) == Proposal("Clip the gradient.", {"src/model.py": STEP_CLIPPED})


def test_a_raw_diff_after_prose() -> None:
    answer = "Clip the gradient.\n\n" + DIFF_BODY + "\nThat is all.\n"
    assert parse(answer) == Proposal("Clip the gradient.", {"src/model.py": STEP_CLIPPED})


def test_a_diff_with_drifted_indentation_in_a_patch_fence() -> None:
    answer = """\
```patch
--- a/src/model.py
+++ b/src/model.py
@@ -9,3 +9,4 @@
 def step(self, grad: float) -> float:
     self.steps += 1
+    grad = max(-1.0, min(1.0, grad))
     return self.lr * grad
```
"""
    assert parse(answer) == Proposal("edit src/model.py", {"src/model.py": STEP_CLIPPED})


def test_a_diff_of_a_frozen_file_stays_in_the_proposal() -> None:
    answer = "```diff\n--- a/tests/test_model.py\n+++ b/tests/test_model.py\n@@ -2 +2 @@\n-    assert True\n+    pass\n```\n"
    proposal = parse(answer)
    assert proposal.files == {"tests/test_model.py": "def test_model():\n    pass\n"}
    assert check(proposal, SURFACE, REPO.get)[1] == "touches paths outside the mutable surface: tests/test_model.py"


def test_a_diff_that_does_not_apply_is_refused_with_the_reason() -> None:
    answer = "Try it.\n```diff\n--- a/src/model.py\n+++ b/src/model.py\n@@ -1,1 +1,1 @@\n-import numpy\n+import numpy as np\n```\n"
    assert parse(answer) == Proposal(
        "Try it.", error="the diff does not apply: hunk 1 of src/model.py does not match the current file (its first line: 'import numpy')"
    )


def test_a_diff_fence_without_file_headers_is_refused() -> None:
    answer = "Lower it.\n```diff\n-epochs = 10\n+epochs = 5\n```\n"
    assert parse(answer).error == "the diff does not apply: no file headers (---/+++) found in the patch"


# --- whole files -------------------------------------------------------------------------------

NEW_CONFIG = "epochs = 30\nbatch = 32\n"


@pytest.mark.parametrize(
    "fence",
    [
        "```toml config/train.toml",
        "```config/train.toml",
        '```toml title="config/train.toml"',
        "```toml path=config/train.toml",
        "```toml:config/train.toml",
        "config/train.toml:\n```toml",
        "**config/train.toml**\n```",
        "### config/train.toml\n\n```toml",
        "Here is the new `config/train.toml`:\n```toml",
    ],
)
def test_a_whole_file_in_a_fence_in_each_path_style(fence: str) -> None:
    answer = f"Train for 30 epochs.\n\n{fence}\nepochs = 30\nbatch = 32\n```\n"
    assert parse(answer) == Proposal("Train for 30 epochs.", {"config/train.toml": NEW_CONFIG})


def test_a_lone_fence_is_the_only_surface_file() -> None:
    answer = "More epochs.\n\n```toml\nepochs = 30\nbatch = 32\n```\n\nRun it with:\n```bash\npytest --autoresearch\n```\n"
    assert parse(answer, files={"config/train.toml": CONFIG}) == Proposal("More epochs.", {"config/train.toml": NEW_CONFIG})


def test_two_fences_without_paths_are_ambiguous() -> None:
    answer = "More epochs.\n\n```\nepochs = 30\n```\n\nor\n\n```toml\nepochs = 40\n```\n"
    assert parse(answer, files={"config/train.toml": CONFIG}) == Proposal(
        "More epochs.",
        error="the answer has 2 code blocks without a file path, so none is taken as config/train.toml; "
        "use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH",
    )


def test_a_fence_without_a_path_is_refused_when_the_surface_has_several_files() -> None:
    assert parse("```toml\nepochs = 30\n```\n").error == (
        "the answer's code blocks name no file; use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"
    )


def test_a_fence_in_another_language_is_not_the_only_surface_file() -> None:
    assert parse("```bash\nrm -rf /\n```\n", files={"config/train.toml": CONFIG}).error == (
        "no code block in the answer is in the language of config/train.toml; "
        "use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"
    )


def test_a_whole_file_keeps_crlf_and_the_missing_final_newline() -> None:
    answer = "config/train.toml\n```toml\nepochs = 30\nbatch = 32\n```\n"
    assert parse(answer, files={"config/train.toml": "epochs = 10\r\nbatch = 32"}).files == {"config/train.toml": "epochs = 30\r\nbatch = 32"}


def test_a_markdown_file_holding_fences_stays_whole() -> None:
    answer = "Document it.\n\ndocs/usage.md\n````markdown\n# Usage\n\n```bash\npytest --autoresearch\n```\n\nDone.\n````\n"
    assert parse(answer, files={"docs/usage.md": "# Usage\n"}).files == {"docs/usage.md": "# Usage\n\n```bash\npytest --autoresearch\n```\n\nDone.\n"}


def test_a_nested_fence_with_the_same_marks_stays_whole() -> None:
    answer = "docs/usage.md\n```markdown\n# Usage\n```bash\npytest\n```\nEnd.\n```\n"
    assert parse(answer, files={"docs/usage.md": "# Usage\n"}).files == {"docs/usage.md": "# Usage\n```bash\npytest\n```\nEnd.\n"}


def test_a_path_mentioned_above_a_fence_in_another_language_does_not_name_it() -> None:
    answer = "More epochs in `config/train.toml`:\n```bash\nsed -i s/10/30/ config/train.toml\n```\n"
    assert parse(answer).error == (
        "the answer's code blocks name no file; use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"
    )
    toml = "More epochs in `src/model.py`:\n```toml\nepochs = 30\n```\n"
    assert parse(toml).error == parse(answer).error
    unknown = "Tune it.\n\nsetup.cfg\n```dosini\n[tool]\nx = 1\n```\n"  # a language the parser does not know
    assert parse(unknown).files == {"setup.cfg": "[tool]\nx = 1\n"}


def test_a_cut_off_whole_file_is_refused() -> None:
    answer = "config/train.toml\n```toml\nepochs = 30\n"
    assert parse(answer).error == "the code block for config/train.toml is cut off (no closing fence); nothing was applied"


def test_two_whole_files_for_one_path_are_refused() -> None:
    answer = "config/train.toml\n```toml\nepochs = 30\n```\nconfig/train.toml\n```toml\nepochs = 40\n```\n"
    assert parse(answer).error == "the answer has two code blocks for config/train.toml; give each file once"


def test_a_fragment_is_not_taken_for_a_whole_long_file() -> None:
    long = "".join(f"x{n} = {n}\n" for n in range(40))
    answer = "src/consts.py\n```python\nx3 = 30\nprint(x3)\n```\n"  # not only definitions: no fragment edit either
    assert parse(answer, files={"src/consts.py": long}).error == (
        "the code block for src/consts.py (2 of the file's 40 lines) looks like a fragment, not the whole file; "
        "use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"
    )
    # a block of definitions the file has once is put in their place
    restated = parse("src/consts.py\n```python\nx3 = 30\n```\n", files={"src/consts.py": long})
    assert restated.files == {"src/consts.py": long.replace("x3 = 3\n", "x3 = 30\n")}


def test_a_whole_frozen_file_stays_in_the_proposal() -> None:
    proposal = parse("tests/test_model.py\n```python\ndef test_model():\n    pass\n```\n")
    assert proposal.files == {"tests/test_model.py": "def test_model():\n    pass\n"}
    assert check(proposal, SURFACE, REPO.get)[1] == "touches paths outside the mutable surface: tests/test_model.py"


# --- the format and robustness -----------------------------------------------------------------


def test_the_answer_format_example_has_the_shape_of_a_valid_answer_and_no_real_path() -> None:
    assert "<<<<<<< SEARCH" in ANSWER_FORMAT and ">>>>>>> REPLACE" in ANSWER_FORMAT
    assert "exactly" in ANSWER_FORMAT and "mutable" in ANSWER_FORMAT and "whole new file" in ANSWER_FORMAT
    assert "made up" in ANSWER_FORMAT and "must differ" in ANSWER_FORMAT
    current = {"pkg/run.py": "def run():\n    steps = 10\n"}
    shaped = ANSWER_FORMAT.replace("steps = 20", "steps = 30").replace("some/folder/example.py", "pkg/run.py")
    assert parse(shaped, files=current, repo=current).files == {"pkg/run.py": "def run():\n    steps = 30\n"}


def test_an_answer_that_copies_the_format_example_is_told_so() -> None:
    """Small models at low temperature copy the format's example word for word (seen with a 0.5B model)."""
    example = ANSWER_FORMAT.split("lines instead:\n\n")[1].split("\n\n- Put")[0]
    proposal = parse("I will increase the steps.\n\n" + example + "\n")
    assert proposal.error == "SEARCH/REPLACE block 1 (some/folder/example.py) copies the answer format's example: write the real lines of config/train.toml, src/model.py"
    only = {"denoise.py": "WINDOW = 3\n"}
    assert "copies the answer format's example: write the real lines of denoise.py" in (parse(example, only, only).error or "")


VALID_ANSWERS = [
    TYPICAL,
    "<think>hmm</think>\n" + TYPICAL + "\nconfig/train.toml\n<<<<<<< SEARCH\nepochs = 10\n=======\nepochs = 20\n>>>>>>> REPLACE\n",
    "Clip.\n\n```diff\n" + DIFF_BODY + "```\n",
    "Clip.\r\n\r\n" + DIFF_BODY.replace("\n", "\r\n"),
    "More.\n\n```toml config/train.toml\nepochs = 30\nbatch = 32\n```\n",
    "Doc.\n\ndocs/a.md\n````markdown\n# A\n```py\nx\n```\n````\n",
]


@pytest.mark.parametrize("answer", VALID_ANSWERS)
def test_every_truncation_of_a_valid_answer_is_a_proposal(answer: str) -> None:
    for cut in range(len(answer) + 1):
        proposal = parse(answer[:cut])
        assert isinstance(proposal, Proposal) and proposal.description
        assert proposal.error is None or not proposal.error.startswith("the answer could not be read"), (cut, proposal.error)


def test_random_junk_is_a_proposal_with_an_error() -> None:
    pieces = ["<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE", "```", "````py x", "~~~", "--- a/x", "+++ b/x", "@@ -1 +1 @@",
              "@@", "-a", "+b", " ", "", "src/model.py", "<think>", "</think>", "\\ No newline", "\r", "\t", "**x**"]  # fmt: skip
    rng = random.Random(7)
    for _ in range(300):
        junk = "\n".join(rng.choice(pieces) for _ in range(rng.randrange(1, 25)))
        proposal = parse(junk)
        assert isinstance(proposal, Proposal) and proposal.description
        assert proposal.error is None or not proposal.error.startswith("the answer could not be read"), (junk, proposal.error)


def test_a_reader_that_raises_gives_an_error_not_an_exception() -> None:
    def broken(path: str) -> str | None:
        raise OSError("disk gone")

    proposal = parse_answer("tests/x.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n", FILES, broken)
    assert proposal == Proposal("unreadable answer", error="the answer could not be read (OSError: disk gone)")


def test_a_huge_answer_is_handled_quickly() -> None:
    filler = "Some reasoning about the model.\n" * 20000
    block = "config/train.toml\n<<<<<<< SEARCH\nepochs = 10\n=======\nepochs = 11\n>>>>>>> REPLACE\n"
    # block 2 on sets epochs to 11 again, where the file reads 11 by then
    assert parse(filler + block * 50 + "\n").files["config/train.toml"].startswith("epochs = 11\n")


# --- small models' near misses -----------------------------------------------------------------
# Shapes seen from Qwen2.5-Coder 0.5B and 1.5B served by llama.cpp on the quickstart (denoise.py)

DENOISE = "WINDOW = 3\nALPHA = 0.9\nPASSES = 1\n\n\ndef denoise(xs):\n    ys = list(xs)\n    for _ in range(PASSES):\n        ys = smooth(ys, WINDOW)\n    return ys\n"
ONE = {"denoise.py": DENOISE}
WINDOW_5 = DENOISE.replace("WINDOW = 3", "WINDOW = 5")


def parse_one(answer: str) -> Proposal:
    return parse_answer(answer, ONE, {**ONE, "signal_data.py": "NOISY = []\n"}.get)


@pytest.mark.parametrize(
    "path",
    ["examples/quickstart/denoise.py", "quickstart/denoise.py", "src/denoise.py", "path/to/file.py", "denoise"],
)
def test_a_misnamed_path_in_an_answer_for_a_one_file_surface_is_that_file(path: str) -> None:
    answer = f"Widen the window.\n\n{path}\n<<<<<<< SEARCH\nWINDOW = 3\n=======\nWINDOW = 5\n>>>>>>> REPLACE\n"
    assert parse_one(answer) == Proposal("Widen the window.", {"denoise.py": WINDOW_5})


def test_a_path_under_a_folder_prefix_is_the_surface_file_it_ends_with() -> None:
    answer = "Clip.\n\nrepo/src/model.py\n<<<<<<< SEARCH\n        self.steps += 1\n=======\n        self.steps += 2\n>>>>>>> REPLACE\n"
    assert parse(answer).files == {"src/model.py": MODEL.replace("self.steps += 1", "self.steps += 2")}


def test_a_misnamed_path_is_kept_when_the_search_text_is_not_in_the_only_file() -> None:
    answer = "Widen.\n\nsrc/model.py\n<<<<<<< SEARCH\nlearning_rate = 0.1\n=======\nlearning_rate = 0.05\n>>>>>>> REPLACE\n"
    assert parse_one(answer).error == (
        "SEARCH/REPLACE block 1 (src/model.py): src/model.py does not exist; the mutable files are denoise.py "
        "(an empty SEARCH creates a new file)"
    )


def test_a_frozen_file_named_by_an_answer_is_never_taken_for_the_surface_file() -> None:
    answer = "Less noise.\n\nsignal_data.py\n<<<<<<< SEARCH\nNOISY = []\n=======\nNOISY = [0]\n>>>>>>> REPLACE\n"
    assert parse_one(answer).files == {"signal_data.py": "NOISY = [0]\n"}  # check() rejects it by name


def test_search_lines_spaced_differently_match_the_one_place_they_mean() -> None:
    # inner spaces changed and the blank lines between the constants and the function dropped
    answer = (
        "Two passes.\n\ndenoise.py\n<<<<<<< SEARCH\nPASSES=1\ndef denoise(xs):\n=======\nPASSES = 2\n\n\n"
        "def denoise(xs):\n>>>>>>> REPLACE\n"
    )
    assert parse_one(answer).files == {"denoise.py": DENOISE.replace("PASSES = 1", "PASSES = 2")}


def test_search_lines_spaced_differently_and_indented_differently_keep_the_files_indentation() -> None:
    answer = "Clip.\n\nsrc/model.py\n<<<<<<< SEARCH\nself.steps  +=  1\nreturn self.lr*grad\n=======\nself.steps += 1\nreturn 0.5 * self.lr * grad\n>>>>>>> REPLACE\n"
    assert parse(answer).files == {"src/model.py": MODEL.replace("return self.lr * grad", "return 0.5 * self.lr * grad")}


def test_a_loose_match_in_two_places_is_refused() -> None:
    text = "A=1\nB = 2\n\nA = 1\nB=2\n"
    answer = "x\n\nf.py\n<<<<<<< SEARCH\nA = 1\nB = 2\n=======\nA = 3\nB = 2\n>>>>>>> REPLACE\n"
    proposal = parse_answer(answer, {"f.py": text}, {"f.py": text}.get)
    assert proposal.error == "SEARCH/REPLACE block 1 (f.py): the SEARCH text is not in f.py (its first line: 'A = 1'); copy the current lines exactly"


@pytest.mark.parametrize("marker", [">>>>>>>", ">>>>>>> REPL", ">>>>>>> replace", ">>>>>>> UPDATED", ">>>>>>> R"])
def test_a_replace_marker_that_lost_its_word_ends_the_block(marker: str) -> None:
    answer = f"Widen the window.\n\ndenoise.py\n<<<<<<< SEARCH\nWINDOW = 3\n=======\nWINDOW = 5\n{marker}"
    assert parse_one(answer) == Proposal("Widen the window.", {"denoise.py": WINDOW_5})


def test_a_forgotten_replace_marker_before_the_closing_fence_ends_the_block() -> None:
    answer = "Widen the window.\n\n```python\ndenoise.py\n<<<<<<< SEARCH\nWINDOW = 3\n=======\nWINDOW = 5\n```\n\nThis smooths more.\n"
    assert parse_one(answer) == Proposal("Widen the window.", {"denoise.py": WINDOW_5})


def test_an_answer_cut_off_inside_its_replace_part_is_refused_not_applied_half() -> None:
    answer = "Rewrite denoise.\n\ndenoise.py\n<<<<<<< SEARCH\ndef denoise(xs):\n    ys = list(xs)\n=======\ndef denoise(xs):\n    ys = [x for x in"
    assert parse_one(answer).error == (
        "SEARCH/REPLACE block 1 (denoise.py) is cut off: the answer ends before its >>>>>>> REPLACE line; keep the answer short"
    )


def test_a_block_that_changes_nothing_is_named_and_the_others_apply() -> None:
    same = "Tune.\n\ndenoise.py\n<<<<<<< SEARCH\nWINDOW = 3\n=======\nWINDOW = 3\n>>>>>>> REPLACE\n"
    assert parse_one(same).error == "the answer changes nothing: its REPLACE lines are the same as its SEARCH lines; change at least one line"
    both = same + "\ndenoise.py\n<<<<<<< SEARCH\nALPHA = 0.9\n=======\nALPHA = 0.7\n>>>>>>> REPLACE\n"
    assert parse_one(both).files == {"denoise.py": DENOISE.replace("ALPHA = 0.9", "ALPHA = 0.7")}


def test_an_answer_that_echoes_the_prompt_is_told_so() -> None:
    """The 1.5B model's second answer on the quickstart: the prompt's context and files, repeated as they are."""
    from pathlib import Path

    data = Path(__file__).parent / "data" / "local_model"
    denoise = (Path(__file__).parent.parent / "examples" / "quickstart" / "denoise.py").read_text()
    fitness = (Path(__file__).parent.parent / "examples" / "quickstart" / "tests" / "test_fitness.py").read_text()
    files = {"denoise.py": denoise}
    proposal = parse_answer((data / "1.5b-before-002.answer.md").read_text(), files, {**files, "tests/test_fitness.py": fitness}.get)
    assert proposal.error == (
        "the answer repeats denoise.py, tests/test_fitness.py from the prompt unchanged; "
        "use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"
    )
    # a file repeated beside a real change is left out, and the change applies
    echo_and_change = f"More smoothing.\n\n### tests/test_fitness.py\n```python\n{fitness}```\n\n### denoise.py\n```python\n{denoise.replace('PASSES = 1', 'PASSES = 2')}```\n"
    assert parse_answer(echo_and_change, files, {**files, "tests/test_fitness.py": fitness}.get).files == {
        "denoise.py": denoise.replace("PASSES = 1", "PASSES = 2")
    }


def test_the_first_real_answer_applies_despite_the_folder_and_indentation_copied_from_the_example() -> None:
    """The 1.5B model's first answer on the quickstart: ``src/denoise.py`` and four spaces, as the old example had."""
    from pathlib import Path

    denoise = (Path(__file__).parent.parent / "examples" / "quickstart" / "denoise.py").read_text()
    answer = (Path(__file__).parent / "data" / "local_model" / "1.5b-before-001.answer.md").read_text()
    proposal = parse_answer(answer, {"denoise.py": denoise}, {"denoise.py": denoise}.get)
    assert proposal == Proposal("Reduce the number of passes from 1 to 0.", {"denoise.py": denoise.replace("PASSES = 1", "PASSES = 0")})


def test_the_format_examples_made_up_path_with_other_lines_is_told_so() -> None:
    """The 0.5B model's second answer: the format's example again, its numbers changed after being told."""
    answer = "some/folder/example.py\n<<<<<<< SEARCH\n    steps = 20\n=======\n    steps = 30\n>>>>>>> REPLACE\n"
    assert parse_one(answer).error == (
        "SEARCH/REPLACE block 1 (some/folder/example.py) copies the answer format's example: write the real lines of denoise.py"
    )


@pytest.mark.parametrize("label", ["Change 1: ", "Single idea: ", "**Idea:** ", "### Change 2: "])
def test_a_numbered_or_qualified_label_is_not_part_of_the_description(label: str) -> None:
    answer = f"{label}Widen the window.\n\ndenoise.py\n<<<<<<< SEARCH\nWINDOW = 3\n=======\nWINDOW = 5\n>>>>>>> REPLACE\n"
    assert parse_one(answer).description == "Widen the window."


def test_code_blocks_that_restate_definitions_of_the_one_file_replace_them() -> None:
    """The 1.5B model's fifth answer: a constant and a whole function, each in a block of its own, no path."""
    from pathlib import Path

    denoise = (Path(__file__).parent.parent / "examples" / "quickstart" / "denoise.py").read_text()
    answer = (Path(__file__).parent / "data" / "local_model" / "1.5b-before-005.answer.md").read_text()
    proposal = parse_answer(answer, {"denoise.py": denoise}, {"denoise.py": denoise}.get)
    new = proposal.files["denoise.py"]
    assert "PASSES = 0\n" in new and "        pass  # This is a placeholder" in new and "ys = moving_average(ys, WINDOW)" not in new
    assert new.count("def denoise(") == 1 and new.startswith(denoise.split("WINDOW")[0])  # the docstring stays
    assert "def moving_average(xs, window):" in new and "def exponential(xs, alpha):" in new


def test_code_blocks_with_a_statement_the_file_does_not_define_are_not_taken_as_fragments() -> None:
    answer = "Use scipy.\n\n```python\nfrom scipy.signal import lfilter\n```\n\n```python\nPASSES = 2\n```\n"
    proposal = parse_one(answer)
    assert proposal.error and proposal.files == {}


def test_a_frozen_file_named_in_passing_is_not_taken_for_the_whole_file_below_it() -> None:
    """The 0.5B model's fourth answer: the sentence above the block names `tests/test_fitness.py`; the block is denoise.py."""
    from pathlib import Path

    root = Path(__file__).parent.parent / "examples" / "quickstart"
    denoise, fitness = (root / "denoise.py").read_text(), (root / "tests" / "test_fitness.py").read_text()
    answer = (Path(__file__).parent / "data" / "local_model" / "0.5b-after-004.answer.md").read_text()
    proposal = parse_answer(answer, {"denoise.py": denoise}, {"denoise.py": denoise, "tests/test_fitness.py": fitness}.get)
    assert list(proposal.files) == ["denoise.py"] and "out, level = xs[0], xs[1]" in proposal.files["denoise.py"]


def test_an_answer_in_html_entities_with_a_constant_in_lower_case_applies() -> None:
    """The 1.5B model's third answer with tools: llama-cpp-python's function-calling format showed it
    every message HTML-escaped, so it wrote ``&lt;`` for ``<``; and it spelt ``ALPHA`` in lower case."""
    from pathlib import Path

    denoise = (Path(__file__).parent.parent / "examples" / "quickstart" / "denoise.py").read_text().replace("ALPHA = 0.9", "ALPHA = 0.8")
    answer = (Path(__file__).parent / "data" / "local_model" / "1.5b-tools-003.answer.md").read_text()
    assert "&lt;&lt;&lt;&lt;&lt;&lt;&lt; SEARCH" in answer
    proposal = parse_answer(answer, {"denoise.py": denoise}, {"denoise.py": denoise}.get)
    assert proposal.error is None, proposal.error
    assert proposal.files == {"denoise.py": denoise.replace("ALPHA = 0.8", "ALPHA = 1.0")}


def test_entities_in_a_file_that_holds_entities_are_left_as_written() -> None:
    page = '<p title="a &amp; b">x</p>\n'
    answer = 'page.html\n<<<<<<< SEARCH\n<p title="a &amp; b">x</p>\n=======\n<p title="a &amp; b">y</p>\n>>>>>>> REPLACE\n'
    assert parse_answer(answer, {"page.html": page}, {"page.html": page}.get).files == {"page.html": '<p title="a &amp; b">y</p>\n'}


def test_a_search_in_another_case_is_refused_when_it_fits_two_places_or_no_name_maps_one_way() -> None:
    text = "RATE = 1\nrate = 1\n"
    answer = "f.py\n<<<<<<< SEARCH\nRate = 1\n=======\nRate = 2\n>>>>>>> REPLACE\n"
    assert parse_answer(answer, {"f.py": text}, {"f.py": text}.get).error == (
        "SEARCH/REPLACE block 1 (f.py): the SEARCH text is not in f.py (its first line: 'Rate = 1'); f.py line 2 reads 'rate = 1'; copy the current lines exactly"
    )
    text = "A = a\n"
    answer = "f.py\n<<<<<<< SEARCH\na = a\n=======\na = b\n>>>>>>> REPLACE\n"  # `a` would be both `A` and `a`
    assert parse_answer(answer, {"f.py": text}, {"f.py": text}.get).error == (
        "SEARCH/REPLACE block 1 (f.py): the SEARCH text is not in f.py (its first line: 'a = a'); f.py line 1 reads 'A = a'; copy the current lines exactly"
    )


def test_a_setting_copied_as_it_was_before_an_earlier_trial_is_set_all_the_same() -> None:
    """The 1.5B model's third trial: an earlier keep set WINDOW = 3; it searched for the old 5."""
    text = "import math\n\nWINDOW = 3\nALPHA = 0.9\n\n\ndef smooth(xs, window=WINDOW):\n    return xs\n"
    files = {"denoise.py": text}
    answer = "denoise.py\n<<<<<<< SEARCH\nWINDOW = 5\n=======\nWINDOW = 7\n>>>>>>> REPLACE\n"
    assert parse_answer(answer, files, files.get).files == {"denoise.py": text.replace("WINDOW = 3", "WINDOW = 7")}
    both = "denoise.py\n<<<<<<< SEARCH\nWINDOW = 5\nALPHA: float = 0.8\n=======\nWINDOW = 7\nALPHA: float = 0.95\n>>>>>>> REPLACE\n"
    assert parse_answer(both, files, files.get).files == {"denoise.py": text.replace("WINDOW = 3\nALPHA = 0.9", "WINDOW = 7\nALPHA: float = 0.95")}
    indented = "denoise.py\n<<<<<<< SEARCH\n    WINDOW = 5\n=======\n    WINDOW = 6\n>>>>>>> REPLACE\n"  # its fourth trial
    assert parse_answer(indented, files, files.get).files == {"denoise.py": text.replace("WINDOW = 3", "WINDOW = 6")}


@pytest.mark.parametrize(
    "search, replace, near",
    [
        ("WINDOW = 5", "ALPHA = 0.5", "line 3 reads 'WINDOW = 3'"),  # another name set: not the same setting
        ("WINDOW = 5\nreturn xs", "WINDOW = 7\nreturn xs", "line 3 reads 'WINDOW = 3'"),  # not only settings
        ("def smooth(xs, window=5):", "def smooth(xs, window=7):", "line 7 reads 'def smooth(xs, window=WINDOW):'"),
    ],
)
def test_other_searches_that_match_nowhere_are_told_the_nearest_line_as_it_reads_now(search: str, replace: str, near: str) -> None:
    text = "import math\n\nWINDOW = 3\nALPHA = 0.9\n\n\ndef smooth(xs, window=WINDOW):\n    return xs\n"
    answer = f"denoise.py\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"
    first = search.splitlines()[0]
    assert parse_answer(answer, {"denoise.py": text}, {"denoise.py": text}.get).error == (
        f"SEARCH/REPLACE block 1 (denoise.py): the SEARCH text is not in denoise.py (its first line: {first!r}); "
        f"denoise.py {near}; copy the current lines exactly"
    )
    unlike = "denoise.py\n<<<<<<< SEARCH\nfor step in schedule():\n=======\npass\n>>>>>>> REPLACE\n"
    assert "reads" not in parse_answer(unlike, {"denoise.py": text}, {"denoise.py": text}.get).error


def test_a_file_of_the_prompt_echoed_under_a_search_marker_is_left_out_and_the_real_block_applies() -> None:
    """The 1.5B model's fourth one-shot answer: a real block, then the fitness test and the
    denoiser's functions repeated under SEARCH markers with no ======= line."""
    from pathlib import Path

    root = Path(__file__).parent.parent / "examples" / "quickstart"
    denoise, fitness = (root / "denoise.py").read_text(), (root / "tests" / "test_fitness.py").read_text()
    answer = (Path(__file__).parent / "data" / "local_model" / "1.5b-oneshot-004.answer.md").read_text()
    proposal = parse_answer(answer, {"denoise.py": denoise}, {"denoise.py": denoise, "tests/test_fitness.py": fitness}.get)
    assert proposal.error is None, proposal.error
    assert proposal.files == {"denoise.py": denoise.replace("PASSES = 1", "PASSES = 2")}


def test_an_answer_that_only_echoes_under_search_markers_is_told_so() -> None:
    answer = "denoise.py\n<<<<<<< SEARCH\nWINDOW = 3\nALPHA = 0.9\n```\n"
    assert parse_one(answer).error == (
        "the answer repeats denoise.py from the prompt unchanged; use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"
    )
    # lines that are not the file's stay a broken block, with the reason
    assert parse_one("denoise.py\n<<<<<<< SEARCH\nWINDOW = 4\n").error == (
        "SEARCH/REPLACE block 1 (denoise.py) is cut off: it has no ======= line and no >>>>>>> REPLACE line"
    )


def test_an_edit_written_as_code_blocks_labelled_search_and_replace_applies() -> None:
    """The 1.5B model's answer on the quickstart (cacd1fb): **SEARCH** and **REPLACE** over two
    fences, no path, the line indented; it wrote the same again when told to use the format."""
    from pathlib import Path

    denoise = (Path(__file__).parent.parent / "examples" / "quickstart" / "denoise.py").read_text()
    answer = (Path(__file__).parent / "data" / "local_model" / "1.5b-labelled-002.answer.md").read_text()
    proposal = parse_answer(answer, {"denoise.py": denoise}, {"denoise.py": denoise}.get)
    assert proposal == Proposal("Change for trial 2", {"denoise.py": denoise.replace("PASSES = 1", "PASSES = 2")})


@pytest.mark.parametrize(
    ("search_label", "replace_label"),
    [("SEARCH:", "REPLACE:"), ("### Original code", "### Modified code"), ("- Before:", "- After:"), ("__Find__", "__Replace with__"), ("Search/Replace block 1 (denoise.py):", "Replace with:")],
)
def test_labelled_pairs_of_code_blocks_become_search_replace_blocks(search_label: str, replace_label: str) -> None:
    answer = f"Widen the window.\n\ndenoise.py\n{search_label}\n```python\nWINDOW = 3\n```\n{replace_label}\n\n```python\nWINDOW = 5\n```\n"
    assert parse_one(answer) == Proposal("Widen the window.", {"denoise.py": ONE["denoise.py"].replace("WINDOW = 3", "WINDOW = 5")})


def test_a_labelled_pair_is_not_taken_apart_from_real_blocks_or_without_its_second_label() -> None:
    real = "denoise.py\n<<<<<<< SEARCH\nWINDOW = 3\n=======\nWINDOW = 4\n>>>>>>> REPLACE\n"
    labelled = "**SEARCH**\n```python\nWINDOW = 3\n```\n**REPLACE**\n```python\nWINDOW = 5\n```\n"
    assert parse_one(f"Both.\n\n{real}\n{labelled}").files == {"denoise.py": ONE["denoise.py"].replace("WINDOW = 3", "WINDOW = 4")}
    half = "**SEARCH**\n```python\nWINDOW = 3\n```\nand then\n```python\nWINDOW = 5\n```\n"
    from pytest_autoresearch.proposals.answer_repair import labelled as pairs

    assert pairs(half.split("\n")) == half.split("\n")  # prose between the blocks: not a labelled pair
