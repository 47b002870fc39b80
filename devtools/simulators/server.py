"""Run a simulator's WSGI app on a real socket, in the foreground (CLI) or a thread (tests)."""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import BaseWSGIServer, make_server

logger = logging.getLogger(__name__)


class BackgroundServer:
    """A threaded HTTP server for ``app`` on ``host:port`` (port 0 picks a free one).

    Use as a context manager: the server listens when ``__enter__`` returns and is shut down and
    its socket closed on exit, also when the test fails.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(
            # A short poll interval makes stop() quick, so tests can afford a server each.
            target=self._server.serve_forever,
            args=(0.05,),
            name=f"sim-{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """Base URL of the server, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        logger.info("Simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve_forever(app, host: str, port: int) -> None:
    """Serve ``app`` until interrupted (the CLI's foreground mode)."""
    server = make_server(host, port, app, threaded=True)
    logger.info("Simulator listening on http://%s:%s", host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
