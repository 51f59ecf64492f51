#!/usr/bin/env python
"""zoo's whole job on a fresh machine, offline: export → serve → pull → convert → run → verify.

No model hub is reachable here, so the model is made locally: ``zoo export`` builds the network of a registry entry
with SEEDED RANDOM (untrained) weights, the result is packed like a published PaddleSeg inference archive and served
from a real HTTP server on 127.0.0.1, and from then on zoo treats it exactly like a download. On a machine with
internet, ``zoo pull fcn`` fetches the published model instead (or its trained weights, exported locally).

    python scripts/demo.py [--model fcn] [--out demo-out] [--size 512x1024]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from zoo import config as zoo_config
from zoo.util import parse_size
from zoo.synthetic import write_street_png


def zoo(*args: str, env: dict[str, str], capture: bool = False) -> str:
    """Run one zoo command as a user would, echoing it; stop the demo if it fails."""
    print(f"\n$ zoo {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], env=env, stdout=subprocess.PIPE if capture else None,
                          text=True)  # fmt: skip
    if proc.returncode:
        sys.exit(f"demo failed at 'zoo {' '.join(args)}' (exit {proc.returncode})")
    return proc.stdout or ""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the demo prints its own story
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fcn", help="architecture to demo (bisenet, danet, deeplabv3, deeplabv3p, fcn)")
    parser.add_argument("--out", default="demo-out", type=Path, help="folder for everything the demo writes")
    parser.add_argument("--size", default="512x1024", help="HxW of the demo image")
    args = parser.parse_args()
    height, width = parse_size(args.size)
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    name = f"{args.model}-demo"
    started = time.time()

    print(f"zoo demo: {name} — an UNTRAINED {args.model} (seeded random weights), so its masks are noise.")
    print("With internet, 'zoo pull fcn' gets PaddleSeg's published (trained) model the same way.")

    # 1. A publisher exports the model and packs it like a PaddleSeg inference archive.
    publisher = {**os.environ, "ZOO_HOME": str(out / "publisher")}
    exported = zoo("export", args.model, "--weights", "random", "--seed", "0", "--json", env=publisher, capture=True)
    folder = Path(__import__("json").loads(exported)["path"])
    served = out / "served"
    served.mkdir()
    with tarfile.open(served / f"{name}.tar", "w") as tar:
        for path in sorted(folder.iterdir()):
            if path.name != "manifest.json":
                tar.add(path, arcname=f"{name}/{path.name}")
    server, base = serve(served)
    print(f"\nserving {served / (name + '.tar')} at {base}/{name}.tar")

    # 2. A user's registry names it; the user's zoo has its own empty cache.
    registry = out / "registry.toml"
    registry.write_text(
        f'[models.{name}]\narchitecture = "{args.model}"\nsummary = "untrained {args.model}, served locally"\n'
        f'dataset = "cityscapes"\nnum_classes = 19\n\n[models.{name}.inference]\nurls = ["{base}/{name}.tar"]\n'
    )
    home = user_home(out)
    user = {**os.environ, "ZOO_HOME": str(home), "ZOO_REGISTRY": str(registry)}
    zoo("pull", name, "--quiet", env=user)
    server.shutdown()  # from here on nothing touches the network
    offline = {**user, "ZOO_OFFLINE": "1"}
    zoo("convert", name, env=offline)
    image = out / "street.png"
    write_street_png(image, height, width)
    print(f"\nwrote a synthetic street image {image} ({height}x{width} HxW)")
    zoo("run", name, str(image), "--out", str(out / "run"), env=offline)
    zoo("verify", name, "--image", str(image), "--report", str(out / "verify"), env=offline)
    zoo("cache", "verify", env=offline)
    zoo("list", env=offline)

    print(f"\ndone in {time.time() - started:.0f} s. Outputs:")
    for path in sorted((out / "run").iterdir()):
        print(f"  run:    {path}")
    for path in sorted((out / "verify").iterdir()):
        print(f"  verify: {path}")
    whose = "your ZOO_HOME" if zoo_config.home() is not None else "a fresh home; set ZOO_HOME to use your own"
    print(f"  home:   {home} ({whose})")
    print("\nTo go on, in a shell (the cache remembers the model, so its registry file is optional from here on):")
    for command in next_commands(name, out, image, registry, home):
        print(f"  $ {command}")


def user_home(out: Path) -> Path:
    """The zoo home the demo's user side works in: ZOO_HOME when it is set, else a fresh one inside ``out``."""
    home = zoo_config.home()
    return home.resolve() if home is not None else out / "zoo-home"


def next_commands(name: str, out: Path, image: Path, registry: Path, home: Path) -> list[str]:
    """The commands a user types next: each works as printed, in this order, with no other setup."""
    q = shlex.quote
    return [
        f"export ZOO_HOME={q(str(home))}",
        f"zoo info {name}",
        f"zoo run {name} {q(str(image))} --out {q(str(out / 'run-again'))}",
        f"zoo --registry {q(str(registry))} list",
        "zoo cache ls",
    ]


if __name__ == "__main__":
    main()
