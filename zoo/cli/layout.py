"""How zoo's human-readable output fits a terminal: the width to fit, long lines wrapped at word boundaries, tables
narrowed (optional columns first, then the last column wrapped), one result line per image within the width."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def width(err: bool = False) -> int | None:
    """The width output should fit: COLUMNS if set, else the terminal's when the stream is one; None: don't fit."""
    from zoo import config

    columns = config.columns()
    if columns is not None:
        return columns
    import sys

    stream = sys.stderr if err else sys.stdout
    try:
        if stream.isatty():
            import shutil

            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError):
        pass
    return None


def fit(text: str, err: bool = False) -> str:
    """Each line of ``text`` wrapped at word boundaries to :func:`width` (continuations indented two spaces)."""
    limit = width(err)
    if limit is None or all(len(line) <= limit for line in text.splitlines()):
        return text
    import textwrap

    indent = "  "
    return "\n".join(
        textwrap.fill(line, limit, subsequent_indent=indent, break_on_hyphens=False, break_long_words=True)
        if len(line) > limit else line
        for line in text.splitlines()
    )


def table(rows: list[list[str]], header: list[str], *, optional: tuple[str, ...] = (), wide: bool = False) -> str:
    """Left-aligned columns, two spaces apart, fitted to the terminal (:func:`width`) unless ``wide``.

    To fit, the ``optional`` columns go first, in the order given, and a note under the table names them (``--wide``
    or ``--json`` shows everything); then the last column wraps at word boundaries under itself. Off a terminal with
    no COLUMNS set, the table is printed whole, as scripts expect."""
    limit = None if wide else width()
    keep = list(range(len(header)))
    hidden: list[str] = []

    def widths(cols: list[int]) -> list[int]:
        return [max(len(r[i]) for r in [header, *rows]) for i in cols]

    if limit is not None:
        for name in optional:
            if sum(widths(keep)) + 2 * (len(keep) - 1) <= limit:
                break
            if name in header and header.index(name) in keep:
                keep.remove(header.index(name))
                hidden.append(name)
    sizes = widths(keep)
    last_start = sum(sizes[:-1]) + 2 * (len(keep) - 1)
    room = None if limit is None else max(limit - last_start, 20)
    lines = []
    for r in [header, *rows]:
        cells = [r[i] for i in keep]
        head = "  ".join(c.ljust(w) for c, w in zip(cells[:-1], sizes[:-1]))
        head = head + "  " if len(cells) > 1 else head
        if room is None or len(cells[-1]) <= room:
            lines.append((head + cells[-1]).rstrip())
            continue
        import textwrap

        parts = textwrap.wrap(cells[-1], room, break_on_hyphens=False) or [""]
        lines.append(head + parts[0])
        lines += [" " * len(head) + part for part in parts[1:]]
    if hidden:
        lines.append(fit(f"(not shown to fit {limit} columns: {', '.join(hidden)}; --wide or --json shows them)"))
    return "\n".join(lines)


def run_line(summary: dict[str, Any], limit: int | None = None) -> str:
    """One line per segmented image: which image, its top classes, the inference time; within ``limit`` columns
    (the path shortened to its file name, then fewer classes, then the name cut from the left). Where the outputs
    went is said once per run."""
    t = summary["timings_ms"]
    path = str(summary["input"])
    shares = [f"{cls} {share:.0%}" for cls, share in list(summary["classes"].items())[:3]]
    ms = f"{t['inference']:.0f} ms"

    def line(name: str) -> str:
        return f"{name}: {', '.join(shares)} ({ms})"

    if limit is None or len(line(path)) <= limit:
        return line(path)
    name = Path(path).name
    while len(line(name)) > limit and len(shares) > 1:
        shares.pop()
    over = len(line(name)) - limit
    if over > 0:
        name = "…" + name[over + 1 :] if over + 1 < len(name) else "…"
    return line(name)[:limit]
