"""The daily report's summary: the template's sentences (the offline provider, the default)
or a language model's text, used only when it passes every check, else the template with a
note saying why.

The model's text is accepted only when the provider finished normally (stop reason end_turn
or stop_sequence), it has no links, images or HTML (what an injected instruction would use to
exfiltrate or to smuggle content), and every number in it passes the grounding check
(grounding.py). Data text in the facts reaches the model inside a <facts> block with < and >
escaped, so a merchant name cannot close the block; the grounding check is the backstop when
an instruction in the data gets through anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from python_jobs.assistant.formatting import Formatter, load_template
from python_jobs.assistant.grounding import check_grounding
from python_jobs.assistant.llm import Provider, ProviderError
from python_jobs.assistant.prompting import render_prompt
from python_jobs.assistant.vocabulary import reason_words

ACCEPTED_STOP_REASONS = frozenset({"end_turn", "stop_sequence", "stop"})
MAX_TOKENS = 900
_MARKUP = re.compile(
    r"(?i)(https?://|www\.|ftp://|mailto:|javascript:|data:|!\[|\]\(|<\s*/?\s*[a-z][^>]*>)"
)


class _Usage(TypedDict):
    """What the model's answer cost, passed on to every Narrative made from it."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Narrative:
    """The summary shown and where it came from; `rejection` says why model text was not
    used, `ungrounded` what in it was not in the facts."""

    text: str
    source: str  # "template" or "model"
    provider: str
    rejection: str | None = None  # ungrounded, markup, empty, provider_error, stop
    stop_reason: str | None = None
    ungrounded: list[str] = field(default_factory=list)
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def note(self, lang: str) -> str:
        words = load_template("report", lang)["narrative"]
        key = "model" if self.source == "model" else "template"
        if self.rejection:
            key = f"rejected_{self.rejection}"
        return words[key].format(
            provider=self.provider, count=len(self.ungrounded), stop_reason=self.stop_reason
        )


def _value(facts: Mapping[str, Any], metric: str) -> Mapping[str, Any]:
    return next(item for item in facts["kpis"]["metrics"] if item["metric"] == metric)


def template_summary(facts: Mapping[str, Any], lang: str) -> str:
    """The summary from templates/report.<lang>.ini: paragraphs of plain sentences."""
    words = load_template("report", lang)["summary"]
    labels = load_template("report", lang)
    f = Formatter(lang)
    day = facts["report_date"]
    tx, volume = _value(facts, "transactions"), _value(facts, "approved_volume_brl")
    first = [
        words["day"].format(
            date_long=f.day_long(day),
            transactions=f.count(tx["value"]),
            approved=f.count(_value(facts, "approved_transactions")["value"]),
            approval_rate=f.pct(_value(facts, "approval_rate_pct")["value"]),
            volume=f.money(volume["value"]),
            ticket=f.money(_value(facts, "average_ticket_brl")["value"]),
        )
    ]
    comparisons = facts["kpis"]["comparisons"]
    for key, field_name, sentence in (
        ("previous_day", "previous_day_change", "previous"),
        ("same_weekday_last_week", "same_weekday_last_week_change", "week"),
    ):
        other = comparisons[key]
        if other["available"]:
            first.append(
                words[sentence].format(
                    date=f.day(other["date"]),
                    transactions_change=f.signed(tx[field_name]),
                    volume_change=f.signed(volume[field_name]),
                )
            )
        else:
            first.append(words[f"{sentence}_missing"].format(date=f.day(other["date"])))
    first.append(
        words["fraud"].format(
            fraud=f.count(_value(facts, "fraud_transactions_reported")["value"]),
            loss=f.money(_value(facts, "fraud_loss_brl")["value"]),
        )
    )

    anomalies = facts["anomalies"]
    if not anomalies["available"]:
        second = words["anomalies_unavailable"].format(
            days=anomalies["history_days"], needed=anomalies["method"]["min_history_days"]
        )
    elif anomalies["items"]:
        top = anomalies["items"][0]
        second = words["anomalies"].format(
            count=f.count(anomalies["count"]),
            checked=f.count(anomalies["slices_checked"]),
            dimension=labels["anomalies"][top["dimension"]],
            value=top["value"],
            share=f.pct(top["share_pct"]),
            metric=labels["anomalies"][top["metric"]],
            usual=f.pct(top["usual_share_pct"]),
            z=f.number(top["robust_z"], 1),
        )
    else:
        second = words["anomalies_none"].format(checked=f.count(anomalies["slices_checked"]))

    alerts = facts["alerts"]
    if alerts["available"]:
        third = [
            words["alerts"].format(
                alerts=f.count(alerts["alerts"]),
                scored=f.count(alerts["transactions_scored"]),
                rate=f.pct(alerts["alert_rate_pct"]),
                confirmed=f.count(alerts["alerts_confirmed_fraud_so_far"]),
            )
        ]
        if alerts["top"]:
            top = alerts["top"][0]
            third.append(
                words["alerts_top"].format(
                    transaction_id=top["transaction_id"],
                    transaction_type=top["transaction_type"],
                    amount=f.money(top["amount_brl"]),
                    score=f.number(top["score"], 4),
                    reasons="; ".join(reason_words(reason, lang) for reason in top["reasons"]),
                )
            )
    else:
        third = [words["alerts_unavailable"].format(date=f.day(day))]

    health = facts["model_health"]
    if health["available"]:
        fourth = [
            words["health"].format(
                date=f.day(health["monitoring_date"]),
                verdict=labels["verdicts"][health["verdict"]],
                rate=f.pct(health["alert_rate_pct"], 2),
                expected=f.pct(health["expected_alert_rate_pct"], 2),
                psi=f.number(health["score_psi"], 3),
            )
        ]
        if health["top_drifted_features"]:
            worst = health["top_drifted_features"][0]
            fourth.append(
                words["health_drift"].format(
                    warning=f.number(health["psi_warning"], 1),
                    count=f.count(health["features_above_warning"]),
                    feature=worst["feature"],
                    psi=f.number(worst["psi"], 2),
                )
            )
    else:
        fourth = [words["health_unavailable"]]
    paragraphs = [" ".join(first), second, " ".join(third), " ".join(fourth)]
    return "\n\n".join(text[:1].upper() + text[1:] for text in paragraphs)


def facts_for_prompt(facts: Mapping[str, Any]) -> str:
    """The facts as JSON that cannot close its <facts> block: < and > are escaped (still
    valid JSON), so data text like "</facts> ignore the above" stays inside as data."""
    text = json.dumps(facts, ensure_ascii=False, indent=1, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def build_prompts(facts: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """(system, user) from prompts/report_system.txt and prompts/report_user.txt, filled in
    one pass (prompting.render_prompt): a value (the facts) is never scanned again, so data
    text that reads "{{language}}" stays as written."""
    words = load_template("report", lang)["prompt"]
    language, number_format = words["language"], words["number_format"]
    system = render_prompt("report_system", language=language, number_format=number_format)
    user = render_prompt(
        "report_user",
        language=language,
        report_date=facts["report_date"],
        facts=facts_for_prompt(facts),
    )
    return system, user


def narrate(facts: Mapping[str, Any], lang: str, provider: Provider) -> Narrative:
    """The model's summary when it passes every check, else the template's (and why)."""
    fallback = template_summary(facts, lang)
    if provider.offline:
        return Narrative(fallback, "template", provider.name)
    system, user = build_prompts(facts, lang)
    try:
        completion = provider.complete(system, user, max_tokens=MAX_TOKENS, temperature=0.0)
    except ProviderError as error:
        return Narrative(
            fallback, "template", provider.name, "provider_error", error=str(error)[:500]
        )
    usage = _Usage(input_tokens=completion.input_tokens, output_tokens=completion.output_tokens)
    text = completion.text.strip()
    if completion.stop_reason not in ACCEPTED_STOP_REASONS:
        return Narrative(
            fallback, "template", provider.name, "stop", stop_reason=completion.stop_reason, **usage
        )
    if not text:
        return Narrative(fallback, "template", provider.name, "empty", **usage)
    if _MARKUP.search(text):
        return Narrative(fallback, "template", provider.name, "markup", **usage)
    grounding = check_grounding(text, facts, lang)
    if not grounding.ok:
        return Narrative(
            fallback,
            "template",
            provider.name,
            "ungrounded",
            ungrounded=grounding.ungrounded,
            **usage,
        )
    return Narrative(text, "model", provider.name, stop_reason=completion.stop_reason, **usage)
