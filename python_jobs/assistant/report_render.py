"""The report's blocks as Markdown (data text made inert: no links, images, HTML or table
breaks from the facts) and as one self-contained HTML page (inline CSS, charts as data: URIs,
every text escaped)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping

from python_jobs.assistant.report_document import (
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Prose,
    Table,
)

_MD_SPECIAL = re.compile(r"([\\`\[\]<>|!])")


def md_escape(text: str) -> str:
    """Plain text made inert in Markdown: no links, images, HTML or table breaks from data."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def to_markdown(blocks: list[Block], figure_files: Mapping[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(f"_{md_escape(block.text)}_" if block.note else md_escape(block.text))
        elif isinstance(block, Prose):
            paragraphs = [
                "\n".join(md_escape(line) for line in part.splitlines() if line.strip())
                for part in re.split(r"\n\s*\n", block.text.strip())
            ]
            out.append("\n\n".join(p for p in paragraphs if p))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {md_escape(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(md_escape(cell) for cell in block.header) + " |",
                "|" + "---|" * len(block.header),
                *("| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in block.rows),
            ]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{md_escape(block.caption)}]({figure_files[block.name]})")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1d2733; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d8dee4; padding-bottom: .2rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #d8dee4; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f2f5f8; }
.note { color: #57606a; font-style: italic; }
figure { margin: 1rem 0; } figcaption { color: #57606a; font-size: .85rem; }
img { max-width: 100%; }
"""


def _html_inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def to_html(blocks: list[Block], lang: str) -> str:
    """One self-contained page: inline CSS, charts as data: URIs, every text escaped."""
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "banklake")
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = ' class="note"' if block.note else ""
            body.append(f"<p{css}>{html.escape(block.text)}</p>")
        elif isinstance(block, Prose):
            for part in re.split(r"\n\s*\n", block.text.strip()):
                lines = [line.strip() for line in part.splitlines() if line.strip()]
                if lines and all(line[:2] in ("- ", "* ") for line in lines):
                    items = "".join(f"<li>{_html_inline(line[2:])}</li>" for line in lines)
                    body.append(f"<ul>{items}</ul>")
                elif lines:
                    body.append(f"<p>{_html_inline(' '.join(lines))}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            caption = html.escape(block.caption)
            body.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html lang="{"pt-BR" if lang == "pt" else "en"}">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
