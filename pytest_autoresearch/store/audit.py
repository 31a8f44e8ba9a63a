"""The audit trail: one JSON Lines record per trial in ``.autoresearch/<tag>/audit.jsonl``.

results.tsv is for reading a run at a glance; the audit trail is for proving later what was
run, on what, and with what outcome, to someone who trusts nothing else (a quality system,
a reviewer of a clinical model). Each record ties a trial to:

- its commit and its parent, the evaluated tree, and a hash of its diff
  (``git diff --binary --full-index PARENT COMMIT``, hashed with SHA-256);
- its verdict, scores, metrics, runs and timings (UTC start and end), the worker and its device;
- the agent and model, and the prompt and answer by SHA-256 (the texts are the side files
  ``trials/NNN.prompt.md`` and ``NNN.answer.md``), and a tool-using agent's conversation
  (``NNN.conversation.json``: messages, tool calls and results, each request's usage);
- the files the evaluator registered with ``fitness.artifact(path)`` (e.g. the weights), by SHA-256;
- the environment it ran in: Python, platform, GPU and key package versions, with a hash of
  the full package list, which is written once to ``environment-<hash>.txt``.

Records are appended whole (one write, then fsync), like results.tsv rows, by the engine's
recorder (:mod:`pytest_autoresearch.engine.recorder`) after the trial's row and refs. They form a
hash chain: each carries ``prev_sha256``, the SHA-256 of the line before it as written (its bytes
without the newline; null on the first line), so :func:`verify_audit` names the first line that
was edited, inserted or removed. The chain alone cannot show a rewritten or dropped *last*
record; the driver can, for its own run: it keeps the lines it wrote and checks the file after
every trial (:meth:`AuditTrail.intact`, a stat first, the content only when the stat moved),
and puts them back (:meth:`AuditTrail.restore`). Each record also names the trial's own files
(``files``: path -> SHA-256, hashed when the trial was logged), so the chain vouches for them too.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.records import RunResult, TrialRecord
from .runfolder import Fingerprint, fingerprint

KEY_PACKAGES = ("pytest", "pytest-autoresearch", "pytest-timeout", "GitPython", "litellm", "torch", "numpy", "ray")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def utc(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _gpus() -> list[str]:
    """The machine's NVIDIA GPUs as nvidia-smi names them (no torch import in the driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def environment() -> tuple[dict[str, Any], str]:
    """What the driver's machine runs (trials run with the same interpreter), and the full
    package list as text."""
    packages = sorted(
        {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions() if d.metadata["Name"]},
        key=str.lower,
    )
    listing = "\n".join(packages) + "\n"
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    info = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "gpus": _gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "packages": versions,
        "packages_sha256": sha256_text(listing),
    }
    return info, listing


class AuditTrail:
    def __init__(self, folder: Path, repo_git: Any, agent: str, model: str | None) -> None:
        self.path = folder / "audit.jsonl"
        self.folder = folder
        self.git = repo_git
        self.agent = agent
        self.model = model
        self._environment: dict[str, Any] | None = None
        self._lines: list[bytes] = []  # every line this trail holds, as written (newline included)
        self._prev: str | None = None  # the SHA-256 of the last line, which the next one names
        self._print: Fingerprint | None = None  # the file's stat right after the last write
        self.broken: int | None = None  # an adopted file's first line that breaks the chain

    @property
    def env(self) -> dict[str, Any]:
        if self._environment is None:
            info, listing = environment()
            target = self.folder / f"environment-{info['packages_sha256'][:12]}.txt"
            if not target.exists():
                target.write_text(listing, encoding="utf-8")
            self._environment = info
        return self._environment

    def diff_sha256(self, parent: str, commit: str) -> str | None:
        if not parent or not commit:
            return None
        out = self.git.execute(["git", "diff", "--binary", "--full-index", "--no-ext-diff", "--no-textconv", "--no-color", parent, commit], strip_newline_in_stdout=False, stdout_as_string=False)
        return hashlib.sha256(out).hexdigest()

    def entry(
        self,
        record: TrialRecord,
        *,
        results: Sequence[RunResult] = (),
        started: float | None = None,
        ended: float | None = None,
        prompt: str | None = None,
        answer: str | None = None,
        tree: str | None = None,
        worker: int | None = None,
        device: str | None = None,
    ) -> dict[str, Any]:
        """A trial's record, hashes and all; computed before it is appended (:meth:`append`),
        so that the section of the loop that holds off signals only writes."""
        artifacts: dict[str, dict[str, str]] = {}
        for result in results:
            for fit in result.fitness:
                if fit.artifacts:
                    artifacts.setdefault(fit.nodeid, {}).update(fit.artifacts)
        number = f"{record.trial:03d}"
        entry: dict[str, Any] = {
            "version": 1,
            "trial": record.trial,
            "status": record.status,
            "commit": record.commit or None,
            "parent": record.parent or None,
            "parent_trial": record.parent_trial,
            "tree": tree,
            "diff_sha256": self.diff_sha256(record.parent, record.commit) if record.status != "baseline" else None,
            "score": record.score,
            "delta": record.delta,
            "metrics": record.metrics,
            "runs": record.runs,
            "spread": record.spread,
            "lines": record.lines,
            "reason": record.reason or None,
            "description": record.description,
            "seconds": round(record.seconds, 3),
            "started": utc(started) if started is not None else None,
            "ended": utc(ended) if ended is not None else None,
            "worker": worker,
            "device": device,  # the worker's CUDA_VISIBLE_DEVICES (autoresearch_devices)
            "agent": self.agent,
            "model": self.model,
            "prompt_sha256": sha256_text(prompt) if prompt is not None else None,
            "prompt_file": f"trials/{number}.prompt.md" if prompt is not None else None,
            "answer_sha256": sha256_text(answer) if answer is not None else None,
            "answer_file": f"trials/{number}.answer.md" if answer is not None else None,
            **self._conversation(number),
            "tokens_in": record.usage.prompt_tokens if record.usage else None,
            "tokens_cached": record.usage.cached_tokens if record.usage else None,
            "tokens_out": record.usage.completion_tokens if record.usage else None,
            "cost_usd": record.usage.cost if record.usage else None,
            "artifacts": artifacts,
            "alarms": [alarm.to_dict() for result in results for alarm in result.alarms],  # what its code reached for, seen at run time
            "logs": [str(r.log_path.relative_to(self.folder)) for r in results if r.log_path is not None and r.log_path.is_relative_to(self.folder)],
            "environment": self.env,
            "files": {},  # the trial's own files (logs, results, prompt, answer) by SHA-256: the recorder's
        }
        return entry

    def _conversation(self, number: str) -> dict[str, str | None]:
        """The tool-using conversation behind a trial's proposal, which the proposer wrote
        before the trial ran: its file and SHA-256 (none for a one-shot agent)."""
        rel = f"trials/{number}.conversation.json"
        try:
            data = (self.folder / rel).read_bytes()
        except OSError:
            return {"conversation_file": None, "conversation_sha256": None}
        return {"conversation_file": rel, "conversation_sha256": hashlib.sha256(data).hexdigest()}

    def append(self, entry: dict[str, Any]) -> None:
        """One whole line, written at once and synced, like a results.tsv row; chained to the
        line before it by ``prev_sha256``. Never through a symlink a trial put in its place."""
        line = (json.dumps({**entry, "prev_sha256": self._prev}, sort_keys=True, allow_nan=False, default=str) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self._lines.append(line)
        self._prev = hashlib.sha256(line[:-1]).hexdigest()
        self._print = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def adopt(self) -> int | None:
        """Continue the trail of a resumed run: what the file holds now is what it should hold
        (a last line cut short by a killed driver is dropped). Returns the first line that
        breaks the chain, if one does (also kept as :attr:`broken`)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with self.path.open("r+b") as f:
                f.truncate(len(data))
        self._lines = data.splitlines(keepends=True)
        self._prev = hashlib.sha256(self._lines[-1][:-1]).hexdigest() if self._lines else None
        self._print = fingerprint(self.path) if self._lines else None
        self.broken = verify_audit(self.path) if self._lines else None
        return self.broken

    def intact(self) -> bool:
        """Whether the file holds exactly the lines this trail wrote. Cheap when nothing
        changed: a stat (size, mtime, ctime, inode; ctime cannot be set from user code), and
        the content is read only when the stat moved."""
        now = fingerprint(self.path)
        if now is not None and now == self._print:
            return True
        if not self._lines:
            return now is None
        try:
            same = not self.path.is_symlink() and self.path.read_bytes() == b"".join(self._lines)
        except OSError:
            return False
        if same:
            self._print = now  # touched, not changed
        return same

    def restore(self) -> None:
        """Put back the lines this trail wrote (after something else changed the file)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, b"".join(self._lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._print = fingerprint(self.path)


def verify_audit(path: Path) -> int | None:
    """The first line (counted from 1) of an audit trail that is not a whole record naming the
    SHA-256 of the line before it (``prev_sha256``; null on the first line), or a last line cut
    short; None when the whole chain holds."""
    lines = path.read_bytes().split(b"\n")
    previous = None
    for number, line in enumerate(lines[:-1], 1):  # each of these ends with a newline
        try:
            record = json.loads(line)
        except ValueError:
            return number
        if not isinstance(record, dict) or record.get("prev_sha256", "missing") != previous:
            return number
        previous = hashlib.sha256(line).hexdigest()
    return len(lines) if lines[-1] else None


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The records of an audit trail (a cut last line, from a killed run, is left out)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
