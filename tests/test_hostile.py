"""Issue 22's hostile cases (and more), each reproduced with a real hostile input: crafted archives, refs, registries,
ONNX metadata and label PNGs, served from a real loopback server or planted in a real ZOO_HOME.

"Refused cleanly" (see :func:`refused`): a non-zero exit, ONE ``zoo: error:`` line naming the problem, never the
generic "this is a bug in zoo" fallback, nothing left behind (:func:`tests.test_hardening.leftovers`), and the next
command works. ``HOSTILE_REGISTRIES`` and friends are growing tables: add the red team's next cases there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401
from tests.test_archive import FILES, model_tar, use_registry  # noqa: F401
from tests.test_hardening import NET, leftovers
from zoo.store import cache, pins

BUG = "this is a bug in zoo"


def refused(proc, *words: str) -> str:
    """The one error line of a cleanly refused command; each of ``words`` must appear in it."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert BUG not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("zoo: error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# ---- 1. a refused download leaves no blob and no pin, whatever the check raised ---------------------------------------

POISONED_PROGRAMS = {
    "recursion": b"[" * 100_000 + b"]" * 100_000,  # json.loads: RecursionError
    "overflow": json.dumps({"base_code": {"magic": "pir"}, "program": {"regions": [{"blocks": [{"ops": [{
        "#": "p", "A": ["w"], "O": {"TT": {"D": [{"#": "0.t_f32"}, [1]]}}}]}]}]}}).encode().replace(
            b"[1]]", b"[1e400]]"),  # int(inf): OverflowError
}


@pytest.mark.parametrize("case", sorted(POISONED_PROGRAMS))
def test_refused_blob_leaves_no_pin(case: str, http_server, use_registry) -> None:  # noqa: F811
    """Issue 22.1: RecursionError / OverflowError while checking a Paddle archive discards the blob and its pin, so
    the publisher's fixed file pulls at once (no 'size mismatch ... pinned in zoo.lock')."""
    bad = model_tar(top="m", files={**FILES, "model.json": POISONED_PROGRAMS[case]})
    use_registry({"m": {"inference": http_server.add("/m.tar", bad)}})
    refused(run_zoo("pull", "m", "--quiet", env=NET), "model.json", "Error", "nothing was kept")
    assert leftovers() == [] and pins.get("m/inference") is None
    http_server.add("/m.tar", model_tar(top="m"))  # the publisher fixes the file
    run_zoo("pull", "m", "--quiet", env=NET, check=True)
    assert pins.get("m/inference") is not None


def test_any_exception_while_checking_discards_the_blob(http_server, use_registry, monkeypatch) -> None:  # noqa: F811
    """Issue 22.1, whatever the exception type: a check that raises something zoo never anticipated (here a
    ZeroDivisionError planted in the real params check, in-process) still discards the blob and its pin."""
    from zoo.errors import ArchiveError
    from zoo.formats import params
    from zoo.make.pull import pull

    use_registry({"m": {"inference": http_server.add("/m.tar", model_tar(top="m"))}})
    monkeypatch.setattr(params, "check_model", lambda *a: 1 / 0)
    with pytest.raises(ArchiveError, match="ZeroDivisionError"):
        pull("m", progress=False)
    assert leftovers() == [] and pins.get("m/inference") is None
