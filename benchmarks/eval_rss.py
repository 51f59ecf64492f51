"""zoo eval never holds the data set: its peak RSS over 200 images at 1024x2048 is within 10% of its peak over 20.

    python benchmarks/eval_rss.py [--model bisenet] [--images 200] [--few 20] [--repeat 1] [--out result.json]

Writes ``--images`` labelled synthetic scenes at 1024x2048 (the Cityscapes layout and size), exports ``--model`` with
seeded random weights and converts it, then runs ``zoo eval MODEL --data ... --limit N --json`` for N = ``--few`` and
N = ``--images``, each in its own process, and reads each one's own peak RSS (``ru_maxrss`` via ``os.wait4`` in a
small launcher, benchmarks/common.py). Two peaks from two processes differ by what happened to overlap in each (the
first images: ONNX Runtime's arena grows while reader threads decode ahead), so the same comparison is also made
inside one process: ``zoo eval --limit IMAGES`` runs with its stderr on a pseudo-terminal, so that its progress bar
says how many images are done, and the process's peak RSS (VmHWM) is read each time the count moves — the peak after
``--few`` images and after all of them, in the same run. Not part of CI; run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import log, run  # noqa: E402

H, W = 1024, 2048


def trajectory(cmd: list[str], total: int) -> dict[int, float]:
    """Run ``cmd`` with stderr on a pseudo-terminal; the process's VmHWM (MB) after each image its bar reports."""
    import pty
    import re
    import subprocess

    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # a 0-column terminal hides the bar
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    peaks: dict[int, float] = {}
    done, buffer = 0, b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        buffer = (buffer + chunk)[-4096:]
        counts = re.findall(rb"(\d+)/%d " % total, buffer)  # tqdm: "eval:  12%|#   | 24/200 [..."
        if counts and int(counts[-1]) > done:
            done = int(counts[-1])
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                break
            peaks[done] = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    proc.wait()
    os.close(master)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bisenet")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--few", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="run the pair (few, many) this many times, alternating")
    parser.add_argument("--out", type=Path, default=Path("eval_rss.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-eval-rss-") as tmp:
        os.environ["ZOO_HOME"] = str(Path(tmp) / "home")
        log(f"exporting and converting {args.model}")
        run(["zoo", "export", args.model, "--weights", "random"])
        run(["zoo", "convert", args.model])
        from zoo.synthetic import write_labelled_dataset

        log(f"writing {args.images} labelled scenes at {W}x{H}")
        data = write_labelled_dataset(Path(tmp) / "cityscapes", args.images, H, W, layout="cityscapes")
        rows: list[dict] = []
        for n in [args.few, args.images] * args.repeat:
            log(f"zoo eval over {n} images")
            done = run(["zoo", "eval", args.model, "--data", str(data), "--limit", str(n), "--json",
                        "--threads", str(args.threads)], rss=True, timeout=7200)  # fmt: skip
            result = json.loads(done.stdout)
            assert result["images"] == n, result["images"]
            rows.append({"images": n, "peak_rss_mb": round(done.peak_rss_mb, 1), "seconds": round(done.seconds, 1),
                       "images_per_second": result["backends"]["onnx"]["images_per_second"]})  # fmt: skip
            log(f"  {rows[-1]}")
        log(f"zoo eval over {args.images} images, peak RSS read after each image")
        peaks = trajectory(["zoo", "eval", args.model, "--data", str(data), "--limit", str(args.images), "--json",
                            "--threads", str(args.threads)], args.images)  # fmt: skip
    # each pair (few, many) side by side; the target holds only if it holds for every pair
    pairs = [rows[i + 1]["peak_rss_mb"] / rows[i]["peak_rss_mb"] for i in range(0, len(rows), 2)]
    seen = sorted(peaks)
    at_few = peaks[max(n for n in seen if n <= args.few)] if any(n <= args.few for n in seen) else float("nan")
    at_all = peaks[seen[-1]] if seen else float("nan")
    marks = {n: round(peaks[n], 1) for n in seen if n in (1, 2, 5, 10, 20, 50, 100, 150, args.images)}
    doc = {"model": args.model, "size": [H, W], "runs": rows, "ratios": [round(r, 4) for r in pairs],
           "within_10_percent": all(abs(r - 1) <= 0.10 for r in pairs),
           "one_process": {"images_done": seen[-1] if seen else 0, "peak_mb_after": marks,
                           "ratio": round(at_all / at_few, 4), "within_10_percent": abs(at_all / at_few - 1) <= 0.10}}  # fmt: skip
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
