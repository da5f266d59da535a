"""A local HTTP receiver for webhook tests: answers every POST as the test says, records the paths."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AnsweringReceiver:
    """A receiver that answers every POST with `respond(handler)`; records the paths it was asked for."""

    def __init__(self, respond) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                owner.paths.append(self.path)
                self.rfile.read(int(self.headers["Content-Length"]))
                respond(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
