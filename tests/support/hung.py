"""A listener that accepts connections and never answers, as a paused Ray dashboard does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hung_listener() -> Iterator[str]:
    """Yields ``http://127.0.0.1:<port>`` of a real loopback listener that holds every connection open."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not closing.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        closing.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
