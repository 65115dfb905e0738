"""How the dashboard writes numbers, and what it never shows.

Data text that did not come from a mart — a quarantined file's reason, which may quote the
bad value it found — is shown only after `redact`: anything shaped like a CPF, an e-mail, a
phone number or an account (8 or more digits) becomes "[redacted]", whatever its context.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
_PERSONAL = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail
    r"|\+?\d[\d.\-/() ]{6,}\d"  # CPF, CNPJ, phone, account: 8+ digits with separators
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

# The overview's names of the daily KPIs (report_facts' metric names).
KPI_LABELS = {
    "transactions": "Transactions",
    "approved_transactions": "Approved transactions",
    "approval_rate_pct": "Approval rate",
    "approved_volume_brl": "Approved volume",
    "average_ticket_brl": "Average ticket",
    "fraud_transactions_reported": "Frauds reported so far",
    "fraud_loss_brl": "Fraud loss so far",
    "fraud_rate_pct": "Fraud rate so far",
}


def redact(text: Any, max_chars: int = 300) -> str:
    """Text safe to show: personal-looking values replaced, control characters removed, cut."""
    cleaned = _PERSONAL.sub(REDACTED, _CONTROL.sub(" ", str(text)))
    return cleaned if len(cleaned) <= max_chars else cleaned[: max_chars - 1] + "…"


def count(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def brl(value: Any) -> str:
    return "–" if value is None else f"R$ {float(value):,.2f}"


def pct(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}%"


def change(value: Any, unit: str) -> str | None:
    """A change as st.metric's delta: percentage points or percent, signed; None: no delta."""
    if value is None:
        return None
    return f"{float(value):+.2f} pp" if unit == "pp" else f"{float(value):+.2f}%"


def show(value: Any, unit: str) -> str:
    """A KPI value in its unit (report_facts.KPIS)."""
    return {"count": count, "brl": brl, "pct": pct}.get(unit, str)(value)
