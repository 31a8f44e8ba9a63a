"""A real small model served on 127.0.0.1, for the opt-in tests and the benchmark.

The model kit (``../shared/local-model`` beside the repository, or ``$AUTORESEARCH_LOCAL_MODEL_KIT``)
holds ``serve.sh``, which starts llama-cpp-python's OpenAI-compatible server on a GGUF file. The
models live in ``$AUTORESEARCH_LOCAL_MODELS`` (default ``/tmp/models``, where the kit's
``get-model.sh`` puts them) and the server runs under ``$AUTORESEARCH_LOCAL_MODEL_PYTHON`` (default:
this interpreter if it has llama-cpp-python, else ``../llama-venv/bin/python`` beside the
repository). Whatever is missing is a reason, worded for the person who runs the tests, never a
failure: :func:`kit_problem` says what is missing and :func:`served` skips with it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: the model file of each size, as the kit's get-model.sh names it
MODELS = {"0.5b": "qwen2.5-coder-0.5b-instruct-q4km.gguf", "1.5b": "qwen2.5-coder-1.5b-instruct-q4km.gguf"}
ALIAS = "qwen-coder"
#: the agent spec and api key a loop against the served model uses
AGENT = f"litellm:openai/{ALIAS}"
#: ports of this project's local model servers (a CLI agent's tests use 8020-8029)
PORTS = range(8012, 8020)
#: the function-calling chat format llama-cpp-python needs for tool calls
TOOLS_FORMAT = "chatml-function-calling"


@dataclasses.dataclass(frozen=True)
class Kit:
    serve: Path  # the kit's serve.sh
    models: Path  # the folder holding the GGUF files
    python: str  # the interpreter that has llama-cpp-python's server


@dataclasses.dataclass(frozen=True)
class Server:
    size: str
    url: str  # the OpenAI-compatible base, .../v1
    n_ctx: int
    tools: bool
    log: Path


def kit_dir() -> Path:
    return Path(os.environ.get("AUTORESEARCH_LOCAL_MODEL_KIT") or REPO.parent / "shared" / "local-model")


def _server_python() -> str:
    given = os.environ.get("AUTORESEARCH_LOCAL_MODEL_PYTHON")
    if given:
        return given
    for candidate in (sys.executable, str(REPO.parent / "llama-venv" / "bin" / "python")):
        if Path(candidate).is_file() and _has_server(candidate):
            return candidate
    return sys.executable


def _has_server(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_kit(size: str) -> Kit | str:
    """The kit that serves the model of ``size``, or why there is none."""
    kit = kit_dir()
    if not (kit / "serve.sh").is_file():
        return f"no local model kit at {kit} (set AUTORESEARCH_LOCAL_MODEL_KIT; see its README.md)"
    models = Path(os.environ.get("AUTORESEARCH_LOCAL_MODELS") or "/tmp/models")
    if not (models / MODELS[size]).is_file():
        return f"the {size} model is not in {models}: run {kit / 'get-model.sh'} {size} {models} PYTHON"
    python = _server_python()
    if not _has_server(python):
        return f"{python} has no llama-cpp-python server: run {kit / 'get-model.sh'} {size} {models} {python}"
    return Kit(kit / "serve.sh", models, python)


def kit_problem(size: str) -> str | None:
    found = find_kit(size)
    return found if isinstance(found, str) else None


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1} for a local model server")


class ServerProblem(RuntimeError):
    """The kit is there but its server did not start (the log's last lines say why)."""


@contextmanager
def serve(size: str, *, tools: bool = False, n_ctx: int = 8192, log_dir: Path | None = None) -> Iterator[Server]:
    """Serve the model of ``size`` until the block ends; the server is killed on the way out.

    ``tools`` starts it with the function-calling chat format. Raises :class:`ServerProblem`
    with the kit's reason when the kit is incomplete or the server does not start."""
    kit = find_kit(size)
    if isinstance(kit, str):
        raise ServerProblem(kit)
    port = _free_port()
    folder = log_dir or Path(tempfile.mkdtemp(prefix="local-model-"))
    log = folder / f"llama-{size}-{port}.log"
    args = [str(kit.serve), str(kit.models / MODELS[size]), ALIAS, str(port), str(log), kit.python]
    args += ["--chat_format", TOOLS_FORMAT] if tools else []
    started = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "N_CTX": str(n_ctx)}, timeout=180)
    if started.returncode != 0 or not started.stdout.strip().isdigit():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
        said = " ".join((started.stderr.strip() or " / ".join(tail)).split())
        if "Illegal instruction" in said:
            said = f"{kit.python}'s llama-cpp-python was built for instructions this CPU lacks; build it from source (see get-model.sh): {said}"
        raise ServerProblem(f"the {size} model server did not start: {said}")
    pid = int(started.stdout.strip())
    try:
        yield Server(size, f"http://127.0.0.1:{port}/v1", n_ctx, tools, log)
    finally:
        _stop(pid)


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def served(size: str, *, tools: bool = False, n_ctx: int = 8192, log_dir: Path | None = None) -> Iterator[Server]:
    """:func:`serve` for a test: a missing kit, model or server skips the test with its reason."""
    import pytest

    try:
        context = serve(size, tools=tools, n_ctx=n_ctx, log_dir=log_dir)
        server = context.__enter__()
    except ServerProblem as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        context.__exit__(None, None, None)
