"""A real socket server on a free loopback port that records every connection and request it
gets: the witness for "nothing fetched this". It answers as told: a small JSON body, a redirect,
a body of a given size, or nothing at all (it accepts and keeps silent)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Listener:
    mode: str = "ok"  # ok | redirect | big | silent
    location: str = ""
    body: bytes = b'{"keys": []}'
    size: int = 0
    port: int = 0
    connections: int = 0
    requests: list[str] = field(default_factory=list)  # request lines with their Host header
    _sock: socket.socket | None = None
    _held: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            with self._lock:
                self._held.append(conn)  # keep it open, say nothing
            return
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            head = data.decode("latin-1").split("\r\n")
            host = next((h for h in head if h.lower().startswith("host:")), "")
            with self._lock:
                self.requests.append(f"{head[0]} | {host}")
            if self.mode == "redirect":
                conn.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: "
                    + self.location.encode()
                    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            else:
                body = b"x" * self.size if self.mode == "big" else self.body
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in self._held:
                conn.close()


@contextmanager
def listening(**kw: object) -> Iterator[Listener]:
    listener = Listener(**kw)  # type: ignore[arg-type]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    listener._sock = sock
    listener.port = sock.getsockname()[1]
    threading.Thread(target=listener._serve, daemon=True).start()
    try:
        yield listener
    finally:
        listener.close()
