"""TCP stand-ins for a database that hangs: a port that accepts connections
and never answers, and a proxy to a real server that can be made to hang."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from .processes import free_port


class Blackhole:
    """Listens on a port and never answers: a client's connect succeeds (the
    kernel completes the handshake) and its first read waits for ever."""

    def __init__(self) -> None:
        self.port = free_port()
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.listen(64)

    @property
    def database_url(self) -> str:
        """A PostgreSQL URL that points here."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/none"

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._socket.close()


class HangingProxy:
    """Forwards connections on its port to ``target_port``; after
    :meth:`hang`, new connections are accepted and left unanswered (counted
    in ``hanging``) until :meth:`close`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.hanging = 0
        self._hang = threading.Event()
        self._closed = threading.Event()
        self._held: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def hang(self) -> None:
        self._hang.set()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=10)
        self._server.close()
        for held in self._held:
            held.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            self._held.append(client)
            if self._hang.is_set():
                self.hanging += 1
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._held.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
