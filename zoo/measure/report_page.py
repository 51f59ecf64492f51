"""One ``index.html`` per report folder: its numbers, its pictures with captions and a colour legend, readable
offline (no script, no web font, no remote file: the pictures are the PNGs beside it, referenced by name)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from zoo.store import userfiles

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 8px; }
.verdict { font-weight: 600; }
ul.facts { padding-left: 18px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
figure { margin: 16px 0; }
figure img { max-width: 100%; border: 1px solid #ccc; image-rendering: pixelated; }
figcaption { color: #444; }
.legend span { display: inline-block; margin: 2px 12px 2px 0; }
.legend i { display: inline-block; width: 18px; height: 18px; vertical-align: middle; margin-right: 5px;
            border: 1px solid #333; }
"""


def write_index(folder: Path, title: str, facts: Sequence[str], figures: Sequence[tuple[str, str]], *,
                legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
                tables: Sequence[tuple[Sequence[str], Sequence[Sequence[str]]]] = (),
                legend_title: str = "Classes shown") -> Path:  # fmt: skip
    """Write ``folder/index.html``: ``title``, a list of ``facts`` (the first one bold: the verdict), each table
    (header, rows), the legend (class name, RGB) and each figure (file name in ``folder``, caption)."""
    e = html.escape
    parts = [f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{e(title)}</h1>"]  # fmt: skip
    if facts:
        parts.append(f"<p class='verdict'>{e(facts[0])}</p>")
        parts.append("<ul class='facts'>" + "".join(f"<li>{e(f)}</li>" for f in facts[1:]) + "</ul>")
    for header, rows in tables:
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
                     + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
                     + "</table>")  # fmt: skip
    if legend:
        swatches = "".join(f"<span><i style='background: rgb({r},{g},{b})'></i>{e(name)}</span>"
                           for name, (r, g, b) in legend)  # fmt: skip
        parts.append(f"<div class='legend'><b>{e(legend_title)}:</b> {swatches}</div>")
    for name, caption in figures:
        parts.append(f"<figure><img src='{e(name)}' alt='{e(caption)}'><figcaption>{e(caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    path = Path(folder) / "index.html"
    userfiles.write_user_file(path, "\n".join(parts))
    return path
