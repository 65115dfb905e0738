"""Plain ASGI pieces shared by the API (app.py) and its HTTP process (front.py), which must
not import the scoring stack (a light process: starlette's types only)."""

from __future__ import annotations

from starlette.types import Receive, Scope

MAX_BODY_BYTES = 1_000_000  # a batch of MAX_BATCH transactions is far below this
TRANSACTIONS_PATH = "/v1/transactions"


def is_hot(scope: Scope) -> bool:
    """`POST /v1/transactions` with a JSON body and no query: the path decided without
    FastAPI's per-request machinery (app.py FastDecisions)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
        return False
    if scope["path"] != TRANSACTIONS_PATH:
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def declared_length(scope: Scope) -> int | None:
    """The Content-Length the client declared, if any."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(receive: Receive) -> bytes | None:
    """The whole body; None when the client went away before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
