"""The report as data (sections of paragraphs, tables and images) and its two renderers.

`build.py` decides what the report says once; HTML and Markdown differ only in how a block is written.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    # marks[r][c]: cell shown in bold (the best value of its column)
    marks: list[list[bool]] | None = None

    def bold(self, r: int, c: int) -> bool:
        return bool(self.marks and self.marks[r][c])


@dataclass
class Text:
    text: str
    note: bool = False  # a smaller, greyed explanation rather than body text


@dataclass
class Image:
    src: str  # relative to the report folder, so the report opens from disk


Block = Table | Text | Image


@dataclass
class Section:
    heading: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)


def to_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}", ""]
    for section in doc.sections:
        parts += [f"## {section.heading}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines = ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
                for r, row in enumerate(block.rows):
                    cells = [f"**{c}**" if block.bold(r, i) else c for i, c in enumerate(row)]
                    lines.append("| " + " | ".join(cells) + " |")
                parts.append("\n".join(lines))
            elif isinstance(block, Text):
                parts.append(block.text)
            else:
                parts.append(f"![{section.heading}]({block.src})")
            parts.append("")
    return "\n".join(parts)


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #bbb;padding:.25em .6em;"
    "text-align:right}th{background:#eee}td:first-child{text-align:left}img{max-width:100%;"
    "border:1px solid #ddd;margin:.3em 0}.note{color:#555}"
)


def to_html(doc: Document) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    for section in doc.sections:
        parts.append(f"<h2>{e(section.heading)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td><b>{e(c)}</b></td>" if block.bold(r, i) else f"<td>{e(c)}</td>"
                                     for i, c in enumerate(row)) + "</tr>"
                    for r, row in enumerate(block.rows)
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, Text):
                parts.append(f'<p class="note">{e(block.text)}</p>' if block.note else f"<p>{e(block.text)}</p>")
            else:
                parts.append(f'<img src="{e(block.src)}" alt="{e(section.heading)}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
