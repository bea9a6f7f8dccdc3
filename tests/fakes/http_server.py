"""A small threaded HTTP server on 127.0.0.1 that routes requests to handlers and records them."""

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON, bytes -> as is, str -> text
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[RecordedRequest, re.Match], Response]


class FakeHttpServer:
    """Serves the routes added with `route`; unknown routes answer 404 and are recorded too."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def find(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        pattern = re.compile(path_pattern + r"\Z")
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    def unmatched(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if self._match(r.method, r.path) is None]

    def _match(self, method: str, path: str):
        for route_method, pattern, handler in self._routes:
            if route_method == method:
                match = pattern.match(path)
                if match:
                    return handler, match
        return None

    def _dispatch(self, request: RecordedRequest) -> Response:
        with self._lock:
            self.requests.append(request)
        found = self._match(request.method, request.path)
        if found is None:
            return Response(404, {"error": {"code": 404, "message": f"{self.name}: no route for "
                                            f"{request.method} {request.path}", "status": "NOT_FOUND"}})
        handler, match = found
        return handler(request, match)

    def start(self) -> "FakeHttpServer":
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=unquote(parts.path),
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = fake._dispatch(request)
                payload = response.body
                content_type = "application/json"
                if isinstance(payload, bytes):
                    content_type = "application/octet-stream"
                elif isinstance(payload, str):
                    payload, content_type = payload.encode(), "text/plain"
                elif payload is None:
                    payload = b""
                else:
                    payload = json.dumps(payload).encode()
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHttpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def error(status: int, message: str, reason: str) -> Response:
    """An error body in the shape Google APIs use."""
    return Response(status, {"error": {"code": status, "message": message, "status": reason}})
