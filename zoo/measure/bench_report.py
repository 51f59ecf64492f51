"""``zoo bench --report DIR``: bench.json, a chart of latency (median, with the 90th percentile marked) and peak
memory per row, and an offline index.html tying them together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

LATENCY = (66, 133, 244)  # RGB of the latency bars
MEMORY = (52, 168, 83)  # RGB of the memory bars
P90 = (234, 67, 53)  # RGB of the 90th-percentile mark


def chart(result: Any, width: int = 900) -> np.ndarray:
    """RGB chart: per row, a latency bar (p50, p90 marked) and a peak-RSS bar, each on its own scale."""
    import cv2

    rows = list(result.backends.items())
    row_h, left, top = 46, 170, 30
    img = np.full((top + row_h * max(len(rows), 1) + 10, width, 3), 255, np.uint8)
    span = (width - left - 110) // 2
    max_ms = max((s.p90_ms for _, s in rows), default=1.0) or 1.0
    max_mb = max((s.peak_rss_mb for _, s in rows), default=1.0) or 1.0
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "latency per image (ms; red: p90)", (left, 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "peak memory (MB)", (left + span + 55, 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (key, stats) in enumerate(rows):
        y = top + i * row_h
        cv2.putText(img, key, (6, y + 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        bar = int(span * stats.p50_ms / max_ms)
        cv2.rectangle(img, (left, y + 8), (left + max(bar, 1), y + 30), LATENCY, -1)
        p90 = left + int(span * stats.p90_ms / max_ms)
        cv2.line(img, (p90, y + 4), (p90, y + 34), P90, 2)
        cv2.putText(img, f"{stats.p50_ms:.1f}", (p90 + 4, y + 24), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x0 = left + span + 55
        mem = int((span - 50) * stats.peak_rss_mb / max_mb)
        cv2.rectangle(img, (x0, y + 8), (x0 + max(mem, 1), y + 30), MEMORY, -1)
        cv2.putText(img, f"{stats.peak_rss_mb:.0f}", (x0 + mem + 4, y + 24), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_report(result: Any, out: Path) -> Path:
    """bench.json, bench.png and index.html in ``out``; returns the index."""
    import cv2

    from zoo.measure import report_page
    from zoo.store import userfiles

    out.mkdir(parents=True, exist_ok=True)
    userfiles.write_user_file(out / "bench.json", json.dumps(result.as_dict(), indent=2, default=str) + "\n")
    ok, data = cv2.imencode(".png", np.ascontiguousarray(chart(result)[:, :, ::-1]))
    if ok:
        userfiles.write_user_file(out / "bench.png", data.tobytes())
    h, w = result.size
    facts = [f"{result.model} at {h}x{w} (HxW), {result.threads} threads, {result.runs} runs after {result.warmup} "
             "warm-up", "latency = preprocess + inference + postprocess, per image"]  # fmt: skip
    facts += [f"{key} FAILED: {why}" for key, why in result.failed.items()]
    rows = [[key, f"{s.p50_ms:.1f}", f"{s.p90_ms:.1f}", f"{s.inference_ms:.1f}", f"{s.throughput_ips:.2f}",
             f"{s.peak_rss_mb:.0f}"] for key, s in result.backends.items()]  # fmt: skip
    legend = [("latency p50", LATENCY), ("latency p90", P90), ("peak memory", MEMORY)]
    return report_page.write_index(out, f"zoo bench {result.model}", facts,
                                   [("bench.png", "latency and peak memory per row")], legend=legend, legend_title="Colours",
                                   tables=[(["row", "p50 ms", "p90 ms", "infer ms", "img/s", "peak RSS MB"], rows)])
