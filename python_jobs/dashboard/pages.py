"""The dashboard's pages: file under app/views/, title, URL path and a text each shows once its
script has run (what the browser test and the page benchmark wait for). app/main.py builds the
navigation from this table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    file: str  # under app/views/
    title: str
    url_path: str
    ready_text: str


PAGES = (
    PageSpec("overview.py", "Overview", "overview", "Anomalies of"),
    PageSpec("fraud.py", "Fraud and alerts", "fraud", "Review an alert"),
    PageSpec("model_health.py", "Model health", "model-health", "Champion"),
    PageSpec("data_quality.py", "Data quality", "data-quality", "Last dbt runs"),
    PageSpec("ask.py", "Ask", "ask", "Ask with"),
    PageSpec("live.py", "Live scoring", "live", "not running"),
)
