"""A scripted OpenAI-compatible chat server on 127.0.0.1, for driving the real litellm client.

Each test starts one, queues the answers it should give (chat completions, completions that call
tools, or HTTP errors), points the loop at it, and reads back the requests it received. ``models`` set, it lists them at
``GET /v1/models`` (the agent's check before the baseline); ``close_after_models`` makes it stop
listening right after that, a server that goes away once the run has started. ``model_info``
adds fields to each listed model (vLLM's ``max_model_len``, say) and ``props`` answers llama.cpp's
``GET /props``: how a server reports its context window.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def answer(content: str, prompt_tokens: int = 100, completion_tokens: int = 50, cached_tokens: int | None = None) -> dict[str, Any]:
    """A successful chat completion; ``cached_tokens`` (part of ``prompt_tokens``) is reported as
    ``usage.prompt_tokens_details.cached_tokens``, as OpenAI reports a prompt-cache hit."""
    return {"content": content, "usage": (prompt_tokens, completion_tokens), "cached": cached_tokens}


def tool_calls(*calls: tuple[str, object], content: str | None = None, prompt_tokens: int = 100, completion_tokens: int = 50) -> dict[str, Any]:
    """A completion that calls tools: each call is (name, arguments), the arguments a dict (sent
    as JSON) or a string sent as it is (malformed JSON, say)."""
    entries = [
        {"id": f"call_{i}_{name}", "type": "function", "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
        for i, (name, args) in enumerate(calls)
    ]
    return {"content": content, "tool_calls": entries, "usage": (prompt_tokens, completion_tokens)}


def delayed(step: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``step``, sent after ``seconds``: a slow model."""
    return {**step, "delay": seconds}


#: an answer in the format the prompt asks for: one SEARCH/REPLACE block on the default project's model.py
SEARCH_REPLACE = """The slope is too shallow; make it steeper.

model.py
<<<<<<< SEARCH
SCALE = 1.0
=======
SCALE = 2.5
>>>>>>> REPLACE
"""


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Answer a request with ``payload`` as JSON (both scripted servers send this way)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


def error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP error in the shape OpenAI sends."""
    return {"status": status, "message": message, "code": code, "headers": headers or {}}


class ScriptedServer:
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.models: list[str] | None = None
        self.close_after_models = False
        self.model_info: dict[str, Any] = {}
        self.props: dict[str, Any] | None = None
        self.gets: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.gets.append(self.path)
                if self.path == "/props" and server.props is not None:
                    self._send(200, server.props, {})
                    return
                if server.models is None or not self.path.endswith("/models"):
                    self._send(404, {"error": {"message": "not found", "type": "error", "code": None}}, {})
                    return
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", **server.model_info} for m in server.models]}, {})
                if server.close_after_models:
                    threading.Thread(target=server.stop, daemon=True).start()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    step = server.script.pop(0) if server.script else error(500, "the script ran out")
                time.sleep(step.get("delay", 0))
                if "status" in step:
                    payload = {"error": {"message": step["message"], "type": "error", "code": step["code"]}}
                    self._send(step["status"], payload, step["headers"])
                    return
                prompt, completion = step["usage"]
                message: dict[str, Any] = {"role": "assistant", "content": step["content"]}
                if step.get("tool_calls"):
                    message["tool_calls"] = step["tool_calls"]
                usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                if step.get("cached") is not None:
                    usage["prompt_tokens_details"] = {"cached_tokens": step["cached"]}
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "scripted"),
                        "choices": [
                            {"index": 0, "message": message, "finish_reason": "tool_calls" if step.get("tool_calls") else "stop"}
                        ],
                        "usage": usage,
                    },
                    {},
                )

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                send_json(self, status, payload, headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        """Stop serving and close the listening socket: later connections are refused."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def prompts(self) -> list[str]:
        """The text of every request's messages, in order."""
        return ["\n".join(_text(m.get("content")) for m in r["body"].get("messages", [])) for r in self.requests]


def _text(content: object) -> str:
    """A message's text: a string, none (an assistant message that only calls tools), or content blocks."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return str(content)


@contextmanager
def scripted_server(
    *script: dict[str, Any],
    models: list[str] | None = None,
    close_after_models: bool = False,
    model_info: dict[str, Any] | None = None,
    props: dict[str, Any] | None = None,
) -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.model_info = dict(model_info or {})
    server.props = props
    server.script.extend(script)
    server.models = models
    server.close_after_models = close_after_models
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)
