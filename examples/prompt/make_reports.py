"""Write reports.jsonl: the frozen gold set of this example (run once; seeded, so it reproduces).

Short breast-imaging reports in the style of a radiology department, made from templates, each
with its gold fields: laterality, size of the largest lesion in millimetres, a BI-RADS-like
category (0 to 5) and the follow-up it recommends. Three splits: 8 worked examples the prompt
may show (`shots`), 40 reports the loop scores (`dev`), 40 it never sees (`holdout`).

    python make_reports.py          # rewrites reports.jsonl next to this file
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "reports.jsonl"
SPLITS = (("shots", 8), ("dev", 40), ("holdout", 40))
SHOT_CATEGORIES = (4, 1, 3, 2, 0, 5, 2, 4)  # the worked examples, in the order a prompt takes them

EXAMS = ["Diagnostic mammogram and targeted ultrasound.", "Bilateral screening mammogram.",
         "Diagnostic mammogram, both breasts.", "Targeted breast ultrasound."]
DENSITY = ["The breasts are almost entirely fatty.", "There are scattered areas of fibroglandular density.",
           "The breasts are heterogeneously dense, which may obscure small masses."]
FOLLOWUP = {
    "routine": ["Return to routine annual screening.", "Continue annual screening mammography."],
    "short_interval": ["Short-interval follow-up imaging in 6 months is recommended.",
                       "Recommend follow-up diagnostic imaging in six months."],
    "additional_imaging": ["Additional imaging with spot compression views is needed.",
                           "Recall for further evaluation with ultrasound is recommended."],
    "biopsy": ["Recommend ultrasound-guided core needle biopsy.", "Tissue sampling is recommended."],
}
KINDS = {  # category: (finding phrases, impression, follow-up)
    1: ([], "Negative.", "routine"),
    2: (["a simple cyst", "an intramammary lymph node", "a stable oval circumscribed mass"], "Benign findings.", "routine"),
    3: (["an oval circumscribed mass", "a probable fibroadenoma"], "Probably benign finding.", "short_interval"),
    0: (["a focal asymmetry", "a possible mass"], "Incomplete: needs additional imaging evaluation.", "additional_imaging"),
    4: (["an irregular hypoechoic mass", "an irregular mass with indistinct margins"], "Suspicious abnormality.", "biopsy"),
    5: (["an irregular spiculated mass", "a spiculated mass with associated pleomorphic calcifications"],
        "Highly suggestive of malignancy.", "biopsy"),
}
WEIGHTS = {1: 3, 2: 3, 3: 2, 0: 2, 4: 2, 5: 1}


def size_text(mm: int, rng: random.Random) -> str:
    return f"{mm / 10:.1f} cm" if rng.random() < 0.4 else f"{mm} mm"


def report(rng: random.Random, category: int | None = None) -> tuple[str, dict]:
    if category is None:
        category = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    phrases, impression, followup = KINDS[category]
    lines = [f"EXAM: {rng.choice(EXAMS)}", f"FINDINGS: {rng.choice(DENSITY)}"]
    side, largest = None, None
    if not phrases:
        lines.append("No suspicious mass, calcification or architectural distortion.")
    else:
        side = rng.choice(["left", "right", "left", "right", "bilateral"] if category == 2 else ["left", "right"])
        where = "in each breast" if side == "bilateral" else f"in the {side} breast at {rng.randint(1, 12)} o'clock"
        finding = rng.choice(phrases)
        if finding.endswith("node"):
            lines.append(f"There is {finding} {where}.")  # a node: no size given
        else:
            largest = rng.randint(5, 38)
            measuring = "the larger measuring" if side == "bilateral" else "measuring"
            lines.append(f"There is {finding} {where}, {measuring} {size_text(largest, rng)}.")
            if side != "bilateral" and rng.random() < 0.3:
                smaller = rng.randint(3, largest - 2)
                lines.append(f"A second, smaller lesion nearby measures {size_text(smaller, rng)}.")
    lines.append(f"IMPRESSION: {impression} BI-RADS {category}.")
    lines.append(f"RECOMMENDATION: {rng.choice(FOLLOWUP[followup])}")
    return "\n".join(lines), {"laterality": side, "size_mm": largest, "birads": category, "followup": followup}


def main() -> None:
    rng = random.Random(4106)
    rows, seen = [], set()
    for split, count in SPLITS:
        for i in range(count):
            category = SHOT_CATEGORIES[i] if split == "shots" else None
            text, gold = report(rng, category)
            while text in seen:  # no report twice, so no worked example is also a test report
                text, gold = report(rng, category)
            seen.add(text)
            rows.append({"id": f"{split}-{i + 1:02d}", "split": split, "text": text, "gold": gold})
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
