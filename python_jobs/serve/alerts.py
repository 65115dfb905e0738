"""Where a `review` or `block` decision goes: alert sinks.

An alert carries what an investigator needs and nothing personal in clear: ids, the curated
counterparty key (hashed when it is a person's PIX key or account), amount, type, channel,
score, decision and reasons. Raw text of the request (a PIX key, a city) is never copied in.

The default sink is a local outbox, one JSON line per alert (<lake>/_stream/alerts.jsonl).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Protocol


class AlertSink(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class OutboxSink:
    """Appends each alert to a JSON-lines file."""

    name = "outbox"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._handle = path.open("a", encoding="utf-8")

    def send(self, alert: dict[str, Any]) -> None:
        with self._lock:
            self._handle.write(json.dumps(alert, default=str) + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()
