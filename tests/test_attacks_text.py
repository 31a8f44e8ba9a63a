"""Attacks through text: secrets under other names, and control characters.

A candidate (or a proposal) tries to get a secret of the driver's environment, or terminal
control sequences, into what the user reads and what the next prompt holds: results.tsv, the
trial logs and result files, audit.jsonl, commit messages, the terminal, the agent's prompt.
Secrets are scrubbed from the trial's environment by a wider rule (names and credential URLs);
the values the driver knows (the scrubbed variables') are redacted wherever trial text still
shows them (the candidate read them elsewhere: a file, ``/proc/<driver>/environ``); control
and bidi characters become visible escapes. Such a candidate is not itself a tamper: it
crashes, or is judged as usual. The loop runs with and without ``autoresearch_sandbox``, and
after each run the invariants of ``test_containment.py`` hold.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import textwrap
import types
from pathlib import Path

import pytest
from helpers import MODEL, Project, default_files
from test_containment import Containment, better, bwrap_works, hostile, reasons

from pytest_autoresearch.core.records import FitnessResult, RunResult, TestResult, TrialRecord
from pytest_autoresearch.core.text import Redactor, is_clean, neutralise, one_line
from pytest_autoresearch.engine.evaluation import Evaluator
from pytest_autoresearch.proposals.proposal import Proposal, check
from pytest_autoresearch.proposals.surface import Surface
from pytest_autoresearch.store.results_log import ResultsLog
from pytest_autoresearch.system.sandbox import looks_secret, scrub, secret_values
from pytest_autoresearch.ui import terminal

# --- secrets under other names --------------------------------------------------------------------

SECRETS = {
    "PGPASSWORD": "pg-hunter2-secret-1",
    "MYSQL_PWD": "mysql-hunter2-secret-2",
    "DATABASE_URL": "postgres://u:hunter2hunter2@db/x",
    "GITHUB_PAT": "ghp_patsecretvalue0000000003",
    "OPENAIKEY": "sk-openaikeysecret00004",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/services/T000/B000/slacksecret5",
    "SENTRY_DSN": "https://sentrysecret6@o0.ingest.sentry.invalid/1",
}
#: What must never show: every value, and the credentials inside the URLs.
NEVER = [*SECRETS.values(), "hunter2hunter2", "sentrysecret6"]
PASSED = {"ZZ_PASSED_TOKEN": "passed-through-value"}
ORDINARY = ("PATH", "PYTHONPATH", "PWD", "OLDPWD", "GIT_AUTHOR_NAME", "TOKENIZERS_PARALLELISM")
PROBED = sorted([*SECRETS, *PASSED, *ORDINARY])

# The candidate prints what reached it, and every secret it can find by other means (a file of
# the repository; the driver's environment through /proc, where no sandbox hides it), then fails
# with all of them in its message.
LEAK_PRELUDE = f'''
NAMES = {PROBED!r}


def leak():
    reached = [n for n in NAMES if n in os.environ]
    found = (HERE / "leak.txt").read_text().split()
    try:
        with open(f"/proc/{{os.getppid()}}/environ", "rb") as f:
            pairs = [e.split(b"=", 1) for e in f.read().split(b"\\0") if b"=" in e]
        found += [v.decode() for k, v in pairs if k.decode() in NAMES]
    except OSError:
        pass
    print("REACHED " + " ".join(reached))
    print("FOUND " + " ".join(found))
    raise RuntimeError("found " + " ".join(found) + "; environment " + " ".join(os.environ[n] for n in reached))
'''


def leaky_model() -> str:
    return hostile(prelude=LEAK_PRELUDE, in_predict="leak()", scale=2.5)


def secret_env(project: Project) -> dict[str, str]:
    return {
        **SECRETS,
        **PASSED,
        "PWD": str(project.path),
        "OLDPWD": str(project.outside),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(project.outside)) if p),
    }


def sandbox_args(sandbox: bool) -> tuple[str, ...]:
    if sandbox and not bwrap_works():
        pytest.skip("needs a working bubblewrap (bwrap)")
    return ("-o", "autoresearch_sandbox=true") if sandbox else ()


def leak_project(project: Project) -> Containment:
    project.init({**default_files(), "leak.txt": "\n".join(SECRETS.values()) + "\n"})
    return Containment(project)


def run_texts(project: Project, tag: str) -> dict[str, str]:
    """Every file the run wrote (results.tsv, audit.jsonl, trials/*: logs, result files,
    prompts, answers), by its path in the run folder."""
    folder = project.path / ".autoresearch" / tag
    return {
        str(p.relative_to(folder)): p.read_bytes().decode("utf-8", "replace")
        for p in folder.rglob("*")
        if p.is_file()
    }


def assert_no_secret(where: str, text: str) -> None:
    for value in NEVER:
        assert value not in text, f"{value!r} shows in {where}"


def reached(project: Project, tag: str) -> list[str]:
    log = (project.path / ".autoresearch" / tag / "trials" / "001.log").read_text()
    lines = [line for line in log.splitlines() if line.startswith("REACHED ")]
    assert lines, log
    return sorted(lines[0].split()[1:])


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "sandbox"])
def test_secrets_under_other_names_reach_neither_the_trial_nor_the_records(project: Project, sandbox: bool) -> None:
    guard = leak_project(project)
    result = project.loop(
        project.replay({"description": "print the environment", "files": {"model.py": leaky_model()}}),
        "--autoresearch-trials=1",
        "-o",
        "autoresearch_pass_env=ZZ_PASSED_TOKEN",
        *sandbox_args(sandbox),
        env=secret_env(project),
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "crash"], reasons(rows)  # a crash, not a tamper
    assert reached(project, "t") == sorted([*ORDINARY, *PASSED])  # the ordinary ones and the one passed on
    # the candidate did find the values (in the file; without the sandbox, in the driver too) ...
    assert "<redacted PGPASSWORD>" in rows[1]["reason"], rows[1]["reason"]
    texts = run_texts(project, "t")
    assert "<redacted DATABASE_URL>" in texts["trials/001.log"]
    # ... and none of them shows anywhere
    assert_no_secret("the terminal", result.stdout.str() + result.stderr.str())
    assert {"results.tsv", "audit.jsonl", "trials/001.log", "trials/001.result.json"} <= texts.keys()
    for name, text in texts.items():
        assert_no_secret(name, text)
    note = next(line for line in result.stdout.lines if "trials run without" in line)
    named = set(note.split("trials run without ")[1].split(" (")[0].split(", "))
    assert set(SECRETS) <= named and not named & {*ORDINARY, *PASSED}, note


def prompt_dumping_agent(project: Project, first: str, said: str = "probe ") -> tuple[str, Path]:
    """A ``cmd:`` agent that writes ``first`` as model.py in trial 1 and an honest gain after it,
    and keeps every prompt it gets in the folder returned (``promptN.md``): the agent's view."""
    prompts = project.outside / "prompts"
    prompts.mkdir()
    script = project.outside / "agent.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import os, pathlib, sys
            trial = os.environ["AUTORESEARCH_TRIAL"]
            pathlib.Path({str(prompts)!r}, "prompt" + trial + ".md").write_text(sys.stdin.read())
            model = pathlib.Path("model.py")
            model.write_text({first!r} if trial == "1" else model.read_text().replace("SCALE = 1.0", "SCALE = 2.5"))
            print({said!r} + trial)
            """
        ),
        encoding="utf-8",
    )
    return "--autoresearch-agent=cmd:" + shlex.join([sys.executable, str(script)]), prompts


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "sandbox"])
def test_secrets_do_not_reach_the_next_prompt(project: Project, sandbox: bool) -> None:
    """An external agent writes the leaking candidate, then reads the prompt it gets next."""
    guard = leak_project(project)
    agent, prompts = prompt_dumping_agent(project, leaky_model())
    result = project.loop(
        agent,
        "--autoresearch-trials=2",
        *sandbox_args(sandbox),
        env=secret_env(project),
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "crash", "keep"], reasons(rows)
    prompt = (prompts / "prompt2.md").read_text()
    assert "<redacted PGPASSWORD>" in prompt  # the failure is shown, its secrets are not
    assert_no_secret("the next prompt", prompt)
    assert_no_secret("the terminal", result.stdout.str() + result.stderr.str())
    for name, text in run_texts(project, "t").items():
        assert_no_secret(name, text)


SECRET_NAMES = [
    "PGPASSWORD",
    "MYSQL_PWD",
    "GITHUB_PAT",
    "OPENAIKEY",
    "SLACK_WEBHOOK_URL",
    "SENTRY_DSN",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "DB_PASSWORD",
    "DB_PASS",
    "SMTP_PASSWD",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "SSH_AUTH_SOCK",
    "NPM_AUTH_TOKEN",
    "HF_TOKENS",
    "GHTOKEN",
    "MYSQLPWD",
    "SENTRYDSN",
    "OAUTH",
    "DBPASSWORD_FILE",
    "APIKEY",
    "openai_api_key",
]
ORDINARY_NAMES = [
    "PATH",
    "PYTHONPATH",
    "PWD",
    "OLDPWD",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "TOKENIZERS_PARALLELISM",
    "HOME",
    "LD_LIBRARY_PATH",
    "MANPATH",
    "XAUTHORITY",
    "DATABASE_URL",
    "KEYBOARD_LAYOUT",
    "PY_COMPAT",
    "GIT_ASKPASS",
    "CUDA_VISIBLE_DEVICES",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_looks_secret_by_name(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_looks_ordinary_by_name(name: str) -> None:
    assert not looks_secret(name)
    assert not looks_secret(name, "/usr/bin:/bin")


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("postgres://u:hunter2@db/x", True),
        ("https://ghp_token0000@github.com/org/repo.git", True),
        ("redis://:pw12345678@cache:6379/0", True),
        ("see http://a/ and mysql://root:pw@h/db", True),
        ("https://example.com/path?user=a@b", False),
        ("https://example.com/@scope/package", False),
        ("git@github.com:org/repo.git", False),
        ("/usr/bin:/bin", False),
    ],
)
def test_a_url_with_credentials_looks_secret(value: str, secret: bool) -> None:
    assert looks_secret("SOME_URL", value) is secret


def test_scrub_keeps_what_is_passed_on_and_names_what_it_removed() -> None:
    env = {**SECRETS, "PATH": "/bin", "PWD": "/w", "TOKENIZERS_PARALLELISM": "false", "GITHUB_TOKEN": "t" * 20}
    kept, removed = scrub(env, keep=["GITHUB_TOKEN"])
    assert removed == sorted(SECRETS)
    assert kept == {"PATH": "/bin", "PWD": "/w", "TOKENIZERS_PARALLELISM": "false", "GITHUB_TOKEN": "t" * 20}
    values = secret_values(env, removed)
    assert values["hunter2hunter2"] == values["u:hunter2hunter2"] == values[SECRETS["DATABASE_URL"]] == "DATABASE_URL"
    assert values["sentrysecret6"] == "SENTRY_DSN"
    assert "t" * 20 not in values  # passed on: not a secret the trial must not see


def test_redactor() -> None:
    r = Redactor({"hunter2hunter2": "A", "abcdefgh": "B", "short": "C"})
    assert r.text("x hunter2hunter2 y abcdefgh short") == "x <redacted A> y <redacted B> short"
    assert r.text("cut: hunter2hun...") == "cut: <redacted A>..."  # pytest's short summary cut it
    assert r.text("hunter2 alone") == "hunter2 alone"
    assert r.tail("r2hunter2 and more") == "<redacted A> and more"  # the tail began inside it
    assert r.bytes(b"\x00hunter2hunter2\xff") == b"\x00<redacted A>\xff"
    assert not Redactor() and not Redactor({"short": "C"}) and r
    assert Redactor().text("hunter2hunter2") == "hunter2hunter2"


def _result(log: Path | None, failure: str = "", tail: str = "") -> RunResult:
    return RunResult(
        exit_code=1,
        seconds=0.1,
        finished=True,
        tests=[TestResult("tests/t.py::test_a", "failed", failure=failure)],
        fitness=[FitnessResult("tests/t.py::test_f", "f", "min", True, score=1.0)],
        output_tail=tail,
        log_path=log,
    )


def test_cleaning_a_result_redacts_and_neutralises_once_for_all(tmp_path: Path) -> None:
    log = tmp_path / "001.log"
    log.write_bytes(b"out \x1b[2J hunter2hunter2\n")
    (tmp_path / "001.result.json").write_text(json.dumps({"failure": "hunter2hunter2"}))
    evaluator = types.SimpleNamespace(redactor=Redactor({"hunter2hunter2": "PGPASSWORD"}))
    result = Evaluator.clean(evaluator, _result(log, "E  RuntimeError: hunter2hunter2 \x1b]0;t\x07\u202e", "nter2hunter2 \x00\n"))  # type: ignore[arg-type]
    assert result.tests[0].failure == "E  RuntimeError: <redacted PGPASSWORD> \\x1b]0;t\\x07\\u202e"
    assert result.output_tail == "<redacted PGPASSWORD> \\x00\n"
    assert log.read_bytes() == b"out \x1b[2J <redacted PGPASSWORD>\n"  # the log stays the raw output, less the secret
    assert json.loads((tmp_path / "001.result.json").read_text()) == {"failure": "<redacted PGPASSWORD>"}


def test_without_secrets_the_log_is_not_read_again(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "001.log"  # reading it would fail; cleaning must not try
    evaluator = types.SimpleNamespace(redactor=Redactor())
    result = Evaluator.clean(evaluator, _result(missing, "plain", "tail\x1b"))  # type: ignore[arg-type]
    assert result.tests[0].failure == "plain" and result.output_tail == "tail\\x1b"


# --- control characters ---------------------------------------------------------------------------

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
TITLE = "\x1b]0;pwned\x07"


def assert_no_raw(where: str, text: str) -> None:
    found = RAW.search(text)
    assert found is None, f"a raw {found.group()!r} in {where}: {text[max(0, found.start() - 60) : found.end() + 60]!r}"


def test_control_characters_reach_neither_the_terminal_nor_the_records(project: Project) -> None:
    project.init()
    guard = Containment(project)
    shouting = hostile(in_predict=r'print("\x1b[2J\x1b]0;pwned\x07\u202e\x00"); raise RuntimeError("\x1b]0;pwned\x07 \u202eevil\x00 \u2066x\u2069")')
    result = project.loop(
        project.replay(
            {"description": f"steeper {TITLE} \u202eslope\x00 now", "files": better(2.5)},
            {"description": "shout \x07\x1b[31m red", "files": {"model.py": shouting}},
            {"description": "hide a path", "files": {"mo\x1bdel.py": MODEL}},
            {"description": "reverse a path", "files": {"\u202emodel.py": MODEL}},
        ),
        "--autoresearch-trials=4",
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "keep", "crash", "invalid", "invalid"], reasons(rows)
    assert rows[1]["description"] == "steeper \\x1b]0;pwned\\x07 \\u202eslope\\x00 now"
    assert "\\x1b]0;pwned\\x07 \\u202eevil\\x00 \\u2066x\\u2069" in rows[2]["reason"]
    assert rows[3]["reason"] == "paths may not contain control or bidi characters: mo\\x1bdel.py"
    assert rows[4]["reason"] == "paths may not contain control or bidi characters: \\u202emodel.py"
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert "\\x1b]0;pwned\\x07" in output
    assert_no_raw("the terminal", output)
    run = project.path / ".autoresearch" / "t"
    assert_no_raw("results.tsv", (run / "results.tsv").read_text(encoding="utf-8"))
    assert_no_raw("audit.jsonl", (run / "audit.jsonl").read_text(encoding="utf-8"))
    messages = project.git("log", "--all", "--format=%B")
    assert "steeper \\x1b]0;pwned\\x07 \\u202eslope\\x00 now" in messages
    assert_no_raw("the commit messages", messages)
    report = project.run("--autoresearch-report", "--autoresearch-tag=t")
    assert report.ret == 0, report.stdout.str()
    assert_no_raw("the report", report.stdout.str() + report.stderr.str())


def test_the_next_prompt_gets_the_failure_neutralised(project: Project) -> None:
    project.init()
    shouting = hostile(in_predict=r'raise RuntimeError("\x1b]0;pwned\x07 \u202eevil\x00")', scale=2.0)
    agent, prompts = prompt_dumping_agent(project, shouting, said="probe \x1b]0;agent\x07 ")
    result = project.loop(agent, "--autoresearch-trials=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert [r["status"] for r in project.rows()] == ["baseline", "crash", "keep"]
    prompt = (prompts / "prompt2.md").read_text()
    assert "\\x1b]0;pwned\\x07 \\u202eevil\\x00" in prompt
    assert_no_raw("the next prompt", prompt.replace("\t", " "))


def test_neutralise() -> None:
    text = f"a{TITLE}\u202eb\x00c\td\r\ne\x7f\x9b\u2066\u2069\u200f\udcff"
    assert neutralise(text) == "a\\x1b]0;pwned\\x07\\u202eb\\x00c\td\ne\\x7f\\x9b\\u2066\\u2069\\u200f\\udcff"
    assert neutralise(text, newlines=False) == "a\\x1b]0;pwned\\x07\\u202eb\\x00c d  e\\x7f\\x9b\\u2066\\u2069\\u200f\\udcff"
    assert neutralise("lone\rcarriage") == "lone\\x0dcarriage"
    assert neutralise("plain text, é and 日本") == "plain text, é and 日本"
    assert neutralise(neutralise(text)) == neutralise(text)  # idempotent
    assert is_clean("a\tb\n") and not is_clean("a\tb", newlines=False) and not is_clean("\u202e")
    assert one_line(f"  two\n lines {TITLE}\t\u202e ") == "two lines \\x1b]0;pwned\\x07 \\u202e"
    assert RAW.search(one_line("".join(map(chr, range(0x00, 0xA0))) + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")) is None


def test_a_results_cell_never_holds_a_raw_control_character(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "results.tsv", ["error"])
    log.create()
    record = TrialRecord(1, "crash", f"d{TITLE}\u202e\x00", reason="r\x1b[2J\tx\ny", metrics={"error": 1.0})
    log.append(record)
    text = (tmp_path / "results.tsv").read_text(encoding="utf-8")
    assert_no_raw("results.tsv", text)
    assert text.count("\n") == 2 and text.splitlines()[1].split("\t")[-2:] == ["r\\x1b[2J x y", "d\\x1b]0;pwned\\x07\\u202e\\x00"]


def test_the_terminal_shows_no_raw_control_character() -> None:
    base = TrialRecord(0, "baseline", "baseline", commit="a" * 40, score=2.0)
    bad = TrialRecord(1, "crash", f"d{TITLE}\u202e\x00", commit="b" * 40, reason="r\x1b[2J\u2066", score=None)
    assert_no_raw("a live line", terminal.live_line(bad, 200, progress="1/2"))
    assert "d\\x1b]0;pwned\\x07\\u202e\\x00" in terminal.live_line(bad, None)
    assert_no_raw("the table", terminal.table([base, bad], 120))
    lines = terminal.summary(
        [base, bad], goal="min", metric="err\x1b", branch="autoresearch/t", log_path="/r\u202e/results.tsv", tag="t", base_ref="a" * 40, stop_reason="stop\x07"
    )
    assert_no_raw("the summary", "\n".join(lines))


@pytest.mark.parametrize("path", ["mo\x1bdel.py", "\u202emodel.py", "model\u2066.py", "mo\x00del.py", "a\tb.py", "x\n.py", "m\x9b.py"])
def test_a_path_with_a_control_or_bidi_character_is_invalid(path: str) -> None:
    changes, reason = check(Proposal("d", {path: "X = 1\n"}), Surface(["*.py", "**/*.py"]), lambda p: None)
    assert changes == {} and reason is not None and reason.startswith("paths may not contain control or bidi characters: ")
    assert_no_raw("the reason", reason) and is_clean(reason, newlines=False)
