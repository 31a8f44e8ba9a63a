"""A scripted Anthropic Messages API server on 127.0.0.1, for driving litellm's real ``anthropic/``
provider: ``POST /v1/messages`` answers with Anthropic's response shape, including the prompt
cache counts (``usage.cache_read_input_tokens``, ``cache_creation_input_tokens``) a real server
reports, so a test sees what the loop does with them.

Each test starts one, queues the messages it should answer with, points the loop at it with
``autoresearch_api_base`` and reads back the request bodies it received (the ``system`` blocks
and ``messages`` as litellm translated them, cache markers included).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_server import send_json


def message(text: str, input_tokens: int = 100, output_tokens: int = 50, cache_read: int = 0, cache_creation: int = 0) -> dict[str, Any]:
    """A successful answer. As Anthropic counts them, ``input_tokens`` are the prompt tokens that
    were neither read from the cache nor written to it."""
    return {"text": text, "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                    "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_creation}}


def api_error(status: int, kind: str, text: str) -> dict[str, Any]:
    """An HTTP error in the shape Anthropic sends (``invalid_request_error``, ``overloaded_error``, ...)."""
    return {"status": status, "kind": kind, "message": text}


class AnthropicServer:
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # no model listing: the agent's preflight learns nothing here
                self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    number = len(server.requests)
                    step = server.script.pop(0) if server.script else api_error(500, "api_error", "the script ran out")
                if not self.path.rstrip("/").endswith("/v1/messages"):
                    self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {self.path}"}})
                elif "status" in step:
                    self._send(step["status"], {"type": "error", "error": {"type": step["kind"], "message": step["message"]}})
                else:
                    self._send(200, {
                        "id": f"msg_{number:04d}",
                        "type": "message",
                        "role": "assistant",
                        "model": body.get("model", "scripted"),
                        "content": [{"type": "text", "text": step["text"]}],
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": step["usage"],
                    })

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                send_json(self, status, payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base litellm's ``anthropic/`` provider is given (it appends ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]


@contextmanager
def anthropic_server(*script: dict[str, Any]) -> Iterator[AnthropicServer]:
    server = AnthropicServer()
    server.script.extend(script)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)
