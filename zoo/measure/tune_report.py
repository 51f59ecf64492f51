"""``zoo tune --report DIR``: the candidate table as ``tune.json``, ``tune.html`` and ``tune.png`` (latency vs label
agreement, one point per candidate, the chosen one ringed), drawn with OpenCV and numpy."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from zoo.store import userfiles

WIDTH, HEIGHT, MARGIN = 960, 560, 80
COLORS = {"pass": (40, 160, 60), "fail": (30, 30, 210), "chosen": (0, 140, 255), "axis": (60, 60, 60)}  # BGR


def write(result: Any, folder: Path) -> dict[str, str]:
    """Write the three files; their paths by kind."""
    folder = Path(folder)
    doc = result.as_dict()
    paths = {"json": folder / "tune.json", "html": folder / "tune.html", "png": folder / "tune.png"}
    userfiles.write_user_json(paths["json"], doc)
    userfiles.write_user_file(paths["png"], scatter_png(doc["candidates"]))
    userfiles.write_user_file(paths["html"], page(doc, paths["png"].name))
    return {k: str(v) for k, v in paths.items()}


def scatter_png(rows: list[dict[str, Any]]) -> bytes:
    """Latency (fastest image, ms; x) against label agreement with float32 Paddle (%; y), PNG bytes."""
    import cv2
    import numpy as np

    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    points = [r for r in rows if r.get("fastest_ms") and r.get("agreement") is not None]
    x0, y0, x1, y1 = MARGIN, HEIGHT - MARGIN, WIDTH - 40, 40
    cv2.line(img, (x0, y0), (x1, y0), COLORS["axis"], 1)
    cv2.line(img, (x0, y0), (x0, y1), COLORS["axis"], 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "fastest image, ms", ((x0 + x1) // 2 - 70, HEIGHT - 25), font, 0.5, COLORS["axis"], 1)
    cv2.putText(img, "labels = float32 Paddle, %", (10, 25), font, 0.5, COLORS["axis"], 1)
    if not points:
        return _encode(img)
    ms = [float(r["fastest_ms"]) for r in points]
    agree = [100.0 * float(r["agreement"]) for r in points]
    lo_x, hi_x = 0.0, max(ms) * 1.08
    lo_y = min(min(agree), 99.0) - 0.2
    hi_y = 100.05

    def at(m: float, a: float) -> tuple[int, int]:
        return (int(x0 + (m - lo_x) / (hi_x - lo_x) * (x1 - x0)), int(y0 - (a - lo_y) / (hi_y - lo_y) * (y0 - y1)))

    for k in range(5):  # ticks
        m, a = lo_x + k * (hi_x - lo_x) / 4, lo_y + k * (hi_y - lo_y) / 4
        px, py = at(m, lo_y)[0], at(lo_x, a)[1]
        cv2.putText(img, f"{m:.0f}", (px - 12, y0 + 18), font, 0.4, COLORS["axis"], 1)
        cv2.putText(img, f"{a:.2f}", (8, py + 4), font, 0.4, COLORS["axis"], 1)
    for r, m, a in zip(points, ms, agree):
        p = at(m, a)
        color = COLORS["pass"] if r.get("passed") else COLORS["fail"]
        cv2.circle(img, p, 5, color, -1)
        cv2.putText(img, r["key"], (p[0] + 7, p[1] - 5), font, 0.35, color, 1)
        if r.get("chosen"):
            cv2.circle(img, p, 11, COLORS["chosen"], 2)
            cv2.putText(img, "chosen", (p[0] - 20, p[1] + 24), font, 0.45, COLORS["chosen"], 1)
    return _encode(img)


def _encode(img: Any) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", img)
    if not ok:
        raise OSError("cannot encode the tune report picture")
    return data.tobytes()


def page(doc: dict[str, Any], png: str) -> str:
    """The HTML page: the summary, the picture, one table row per candidate with why it was (not) chosen."""
    def cell(v: Any) -> str:
        return f"<td>{html.escape('' if v is None else str(v))}</td>"

    head = ["configuration", "fastest ms", "p50 ms", "labels", "passed", "mIoU drop", "others' CPU", "why"]
    rows = []
    for r in doc["candidates"]:
        agreement = f"{100 * r['agreement']:.3f}%" if r.get("agreement") is not None else None
        fastest = f"{r['fastest_ms']:,.1f}" if r.get("fastest_ms") else None
        p50 = f"{r['p50_ms']:,.1f}" if r.get("p50_ms") else None
        style = ' style="font-weight:bold;background:#fff3d6"' if r.get("chosen") else ""
        cells = [r["key"] + (" (reference)" if r.get("reference") else ""), fastest, p50, agreement, r.get("passed"),
                 r.get("miou_drop"), f"{r.get('others_share', 0):.0%}",
                 r.get("why") + (f" — {r['note']}" if r.get("note") else "")]  # fmt: skip
        rows.append(f"<tr{style}>" + "".join(cell(c) for c in cells) + "</tr>")
    crit = doc["criteria"]
    return (
        "<!doctype html><meta charset='utf-8'><title>zoo tune " + html.escape(doc["name"]) + "</title>"
        "<style>body{font-family:sans-serif}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}</style>"
        f"<h1>zoo tune {html.escape(doc['name'])}</h1><p>{html.escape(doc['summary'])}</p>"
        f"<p>Judged against float32 Paddle Inference on {html.escape(_inputs(crit))}: min agreement "
        f"{crit['min_agreement']}{'' if crit.get('max_miou_drop') is None else ', max mIoU drop ' + str(crit['max_miou_drop'])}"
        f"; {crit['rounds']} interleaved rounds of {crit['warmup']} warm-up + {crit['runs']} timed images, each "
        "candidate in its own process.</p>"
        f"<img src='{html.escape(png)}' alt='latency vs agreement'>"
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>\n"
    )  # fmt: skip


def _inputs(crit: dict[str, Any]) -> str:
    if crit.get("images"):
        return f"{len(crit['images'])} image(s)"
    return f"{crit['count']} synthetic {crit['size'][0]}x{crit['size'][1]} scenes (seed {crit['seed']})"
