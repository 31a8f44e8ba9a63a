"""Gates: whatever the agent writes, prompt.toml stays a prompt the evaluator can send."""

from __future__ import annotations

from harness import FIELDS, LIMITS, build_messages, load_prompt, load_reports, parse_answer


def test_settings_are_in_range():
    prompt = load_prompt()
    assert isinstance(prompt["instruction"], str) and prompt["instruction"].strip()
    for key, (low, high) in LIMITS.items():
        assert low <= prompt[key] <= high, f"{key} = {prompt[key]} is outside [{low}, {high}]"


def test_the_report_is_sent_last_and_whole():
    report = load_reports("dev")[0]["text"]
    messages = build_messages(load_prompt(), report, load_reports("shots"))
    assert messages[0]["role"] == "system"
    assert messages[-1] == {"role": "user", "content": f"Report:\n{report}"}


def test_both_answer_formats_are_read():
    gold = {"laterality": "left", "size_mm": 14, "birads": 4, "followup": "biopsy"}
    assert parse_answer('{"laterality": "left", "size_mm": 14, "birads": 4, "followup": "biopsy"}') == gold
    assert parse_answer("Sure.\nLaterality: left\nSize_mm: 14\nBI-RADS: 4\nFollow-up: biopsy") == gold
    assert parse_answer('{"laterality": "left", "size_') == dict.fromkeys(FIELDS)
