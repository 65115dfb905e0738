"""Filling prompt templates, and keeping data apart from instructions inside them.

Anything that did not come from this repository — the user's question, a merchant name, an
engine error that quotes a value — goes into a prompt only through `data_block`: wrapped in a
named tag, with `<`, `>` and `&` escaped so the text cannot close its tag or open another,
and control characters removed. Every system prompt says that tagged text is data, never
instructions. That lowers the odds of a successful injection; it does not make one
impossible, which is why everything a model writes still goes through the SQL guard.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent / "prompts"
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_TAG = re.compile(r"^[a-z_]+$")


def clean_text(value: object, *, max_chars: int | None = None) -> str:
    """`value` as text without control characters (terminal escapes, bidi overrides), cut to
    `max_chars` with an ellipsis. For data shown on a terminal or put into a prompt."""
    text = _CONTROL.sub(" ", str(value))
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(max_chars - 1, 0)] + "…"
    return text


def data_block(tag: str, text: object, *, max_chars: int = 20_000) -> str:
    """`text` as inert data between <tag> and </tag> (see the module docstring)."""
    if not _TAG.match(tag):
        raise ValueError(f"data tag must be lowercase letters and underscores, got {tag!r}")
    body = html.escape(clean_text(text, max_chars=max_chars), quote=False)
    return f"<{tag}>\n{body}\n</{tag}>"


def load_prompt(name: str) -> str:
    """Prompts are versioned text files beside this module, never strings in code."""
    path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {name!r} not found: {path}")
    return path.read_text(encoding="utf-8")


def render_prompt(name: str, **values: str) -> str:
    """The prompt file `prompts/<name>.txt` with each {{key}} replaced. Every placeholder must
    be given and every value used, so a renamed placeholder fails loudly, not silently."""
    template = load_prompt(name)
    wanted = set(_PLACEHOLDER.findall(template))
    missing = wanted - values.keys()
    unused = values.keys() - wanted
    if missing or unused:
        raise ValueError(
            f"prompt {name!r}: missing values {sorted(missing)}, unused values {sorted(unused)}"
        )
    # one pass: a value that itself contains {{...}} is not expanded again
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
