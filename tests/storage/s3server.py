"""A real S3 endpoint for tests: moto's server in a thread on 127.0.0.1, stoppable and restartable.

Requests go over HTTP with real boto3 signing, so retries, connection errors and multipart uploads
behave as against any S3 endpoint. moto keeps its buckets in process memory, so a server restarted on
the same port serves the same objects.
"""

from __future__ import annotations

import logging

from moto.server import ThreadedMotoServer

from thpad.storage.uri import S3Config


class S3Server:
    """One moto S3 server on 127.0.0.1 (``port=0`` picks a free port, kept across restarts)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: ThreadedMotoServer | None = None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def config(self, max_attempts: int = 1) -> S3Config:
        """An ``S3Config`` for this server (one attempt by default so failures show at once)."""
        return S3Config(endpoint_url=self.endpoint, region="us-east-1", max_attempts=max_attempts,
                        connect_timeout_s=2.0, read_timeout_s=10.0)

    def start(self) -> S3Server:
        """Start serving (on the same port as before after a ``stop``)."""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket, so new connections are refused at once."""
        if self._server is not None:
            self._server.stop()
            # ThreadedMotoServer.stop only ends the serve loop; without closing the socket the kernel
            # would still accept connections and clients would hang until their read timeout.
            self._server._server.server_close()
            self._server = None
