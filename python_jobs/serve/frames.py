"""The wire between `banklake serve`'s HTTP process and its scoring process (docs/decisions/0027).

One stream socket (a socketpair: no path, and either side sees the other's death as the end
of the stream) carries frames both ways. A request frame is one HTTP request; a reply frame
answers it by its id, in any order:

    request  REQUEST header (id, kind, received, head length, body length), head, body
    reply    REPLY header (id, status, head length, body length), head, body

`received` is the HTTP process's time.monotonic() when the request had arrived (the same
clock in both processes): the answer's latency counts the hop. A HOT request is
`POST /v1/transactions` with a JSON body and no query (app.py FastDecisions): its head is
empty. Any other request's head is JSON {"method", "path", "raw_path", "query", "headers"}
(headers as [name, value] pairs of latin-1 text), its body the request's bytes. A reply's
head is empty for a JSON body, else JSON [[name, value], ...] of the response's headers.
Ids are 32 bits and wrap around (ID_MASK): they only tell apart the requests in flight.
"""

from __future__ import annotations

import json
import struct
from typing import Any

REQUEST = struct.Struct("!IBdII")
REPLY = struct.Struct("!IHII")
ID_MASK = 0xFFFFFFFF
HOT, HTTP = 1, 2
JSON_HEADERS = [(b"content-type", b"application/json")]


def http_head(head: bytes) -> dict[str, Any]:
    """A HTTP request frame's head: method, path, raw_path, query, headers."""
    fields: dict[str, Any] = json.loads(head)
    return fields


def request(
    id: int, kind: int, received: float, body: bytes, head: dict[str, object] | None = None
) -> bytes:
    encoded = b"" if head is None else json.dumps(head, separators=(",", ":")).encode()
    return REQUEST.pack(id, kind, received, len(encoded), len(body)) + encoded + body


def reply(id: int, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None) -> bytes:
    head = (
        b""
        if headers is None
        else json.dumps([[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers]).encode()
    )
    return REPLY.pack(id, status, len(head), len(body)) + head + body


def reply_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    if not head:
        return JSON_HEADERS
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(head)]


class Reader:
    """Splits the bytes a stream delivers into frames of one shape (REQUEST or REPLY)."""

    def __init__(self, header: struct.Struct) -> None:
        self.header = header
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[tuple[int | float, ...], bytes, bytes]]:
        """The frames completed by `data`: (header fields, head, body)."""
        frames = []
        self.buffer += data
        size = self.header.size
        start = 0
        buffer = self.buffer
        while len(buffer) - start >= size:
            fields = self.header.unpack_from(buffer, start)
            head_length, body_length = fields[-2], fields[-1]
            end = start + size + head_length + body_length
            if end > len(buffer):
                break
            head = bytes(buffer[start + size : start + size + head_length])
            body = bytes(buffer[start + size + head_length : end])
            start = end
            frames.append((fields[:-2], head, body))
        del buffer[:start]
        return frames
