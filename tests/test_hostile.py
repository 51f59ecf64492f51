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


# ---- 5. refs and manifests are not trusted: keys and file names stay under the cache root --------------------------

KEY = "ab" * 32  # a well-formed entry key


def plant_ref(name: str, ref: object) -> Path:
    path = cache.refs_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ref))
    return path


def plant_entry(sub: str, key: str, files: dict[str, bytes]) -> Path:
    folder = cache.root() / sub / key
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    records = {n: {"sha256": cache.sha256_bytes(d), "size": len(d)} for n, d in files.items()}
    (folder / cache.MANIFEST).write_text(json.dumps({"key": key, "files": records}))
    return folder


def test_cache_rm_never_deletes_outside_the_cache_through_a_ref_key(tmp_path: Path) -> None:
    """Issue 22.5: a ref whose paddle.key is '../../../victim' — 'zoo cache rm' forgets the ref, the victim stays."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    cache.models_dir().mkdir(parents=True)  # a cache that holds models: '..' from models/ resolves
    depth = len(cache.models_dir().relative_to(tmp_path).parts)
    plant_ref("m", {"paddle": {"key": "../" * depth + "victim", "source": "inference"}})
    assert (cache.models_dir() / ("../" * depth + "victim")).resolve() == victim.resolve()  # the attack aims right
    run_zoo("cache", "rm", "m", check=True)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (cache.refs_dir() / "m.json").exists()
    run_zoo("cache", "ls", check=True)


REF_TRICKS = {
    "file-escapes": {"onnx": {"key": KEY, "file": "../../../../etc/passwd"}},
    "file-absolute": {"onnx": {"key": KEY, "file": "/etc/passwd"}},
    "key-escapes": {"onnx": {"key": "../" + KEY, "file": "model.onnx"}},
    "key-not-a-string": {"onnx": {"key": ["x"]}},
    "record-not-an-object": {"onnx": "model.onnx"},
    "not-an-object": ["onnx"],
}


@pytest.mark.parametrize("case", sorted(REF_TRICKS))
def test_cache_path_never_prints_a_path_outside_the_cache(case: str) -> None:
    """Issue 22.5 (and relatives): 'zoo cache path' refuses a ref whose key or file would leave the cache."""
    plant_entry("onnx", KEY, {"model.onnx": b"x"})
    plant_ref("m", REF_TRICKS[case])
    proc = run_zoo("cache", "path", "m", "--format", "onnx")
    refused(proc, "m.json", "zoo cache rm m")
    assert "/etc/passwd" not in proc.stdout
    run_zoo("cache", "rm", "m", check=True)  # the fix it names works
    run_zoo("cache", "ls", check=True)


BROKEN_REFS = {
    "torn": b'{"paddle": {"key": "' + KEY.encode(),
    "not-utf8": b'{"paddle": {"key": "\xff\xfe"}}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(BROKEN_REFS) + ["symlink"])
def test_torn_or_symlinked_ref_is_a_named_refusal(case: str, tmp_path: Path) -> None:
    """Issue 22.10: a torn, non-UTF-8, 100,000-deep or symlinked ref is named, with 'zoo cache rm NAME' as the fix."""
    path = plant_ref("m", {})
    if case == "symlink":
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps({"paddle": {"key": KEY}}))
        path.unlink()
        path.symlink_to(elsewhere)
    else:
        path.write_bytes(BROKEN_REFS[case])
    refused(run_zoo("cache", "path", "m"), "m.json", "zoo cache rm m")
    run_zoo("cache", "rm", "m", check=True)
    assert not path.is_symlink() and not path.exists()
    if case == "symlink":
        assert elsewhere.is_file()
    run_zoo("cache", "ls", check=True)


@pytest.mark.parametrize("manifest", [b"{torn", b"\xff", json.dumps({"files": {"../../x": {"size": 1}}}).encode()])
def test_corrupt_manifest_is_a_named_refusal(manifest: bytes) -> None:
    """Issue 22.10: a torn or hostile manifest.json is an IntegrityError naming it, never the generic fallback."""
    folder = plant_entry("models", KEY, {"model.json": b"{}", "model.pdiparams": b""})
    (folder / cache.MANIFEST).write_bytes(manifest)
    plant_ref("m", {"paddle": {"key": KEY}})
    proc = run_zoo("cache", "verify")
    assert proc.returncode == 1 and BUG not in proc.stderr and "manifest" in proc.stdout + proc.stderr, proc.stderr
    run_zoo("cache", "rm", "m", check=True)
    run_zoo("cache", "prune", check=True)


def test_bundle_ref_with_a_path_for_a_file_is_refused(http_server, use_registry, tmp_path, monkeypatch) -> None:  # noqa: F811
    """Issue 22.5 via bundle import: a bundle whose ref says file: '../../../../etc/passwd' imports nothing."""
    from tests.test_bundle import _rewrite
    from tests.test_pull import onnx_bytes
    from zoo.make.pull import pull
    from zoo.make import bundle

    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", model_tar()),
                           "onnx": http_server.add("/t.onnx", onnx_bytes())}})  # fmt: skip
    pull("tiny", fmt="all", progress=False)
    good = bundle.export_bundle(["tiny"], tmp_path / "good.tar").path
    ref = cache.get_ref("tiny")
    ref["onnx"]["file"] = "../../../../etc/passwd"
    bad = _rewrite(good, tmp_path / "bad.tar", {"refs/tiny.json": json.dumps(ref).encode()}, fix_index=True)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "fresh"))
    refused(run_zoo("bundle", "import", str(bad)), "refs/tiny.json", "not a plain file name")
    assert leftovers() == []
    run_zoo("bundle", "import", str(good), check=True)
    assert run_zoo("cache", "path", "tiny", "--format", "onnx", check=True).stdout.startswith(str(cache.root()))


# ---- 3 and 8. eval --report: planted symlinks replaced, never written through; the folder checked before the work -----


def _labelled(root: Path, n: int = 2) -> Path:
    from zoo import synthetic

    return synthetic.write_labelled_dataset(root, n, 32, 64, layout="folders")


def test_eval_report_replaces_planted_symlinks_never_writes_through(models, tmp_path: Path) -> None:
    """Issue 22.3: DIR/eval.json, DIR/class_iou.png, DIR/confusion_onnx.png and DIR/worst/*.jpg planted as symlinks
    to other files: the report replaces the links, the files they pointed at keep their content."""
    models.install_converted("bisenet")
    data = _labelled(tmp_path / "data")
    out = tmp_path / "rep"
    (out / "worst").mkdir(parents=True)
    victims = []
    names = ["eval.json", "class_iou.png", "confusion_onnx.png"] + [f"worst/{r}_onnx_{p.stem}.jpg" for r in (1, 2)
                                              for p in sorted((data / "images").iterdir())]  # fmt: skip
    for i, name in enumerate(names):
        victim = tmp_path / f"victim{i}.txt"
        victim.write_text("precious")
        (out / name).symlink_to(victim)
        victims.append(victim)
    run_zoo("eval", "bisenet", "--data", str(data), "--report", str(out), check=True)
    assert [v.read_text() for v in victims] == ["precious"] * len(victims)
    assert not (out / "eval.json").is_symlink() and json.loads((out / "eval.json").read_text())["images"] == 2
    assert not (out / "confusion_onnx.png").is_symlink()
    assert any(not (out / n).is_symlink() for n in names[3:])  # the worst images were written, as files


def test_eval_report_refuses_a_planted_worst_folder_symlink(models, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "worst").symlink_to(tmp_path / "elsewhere")
    proc = run_zoo("eval", "bisenet", "--data", str(_labelled(tmp_path / "data")), "--report", str(out))
    refused(proc, "worst", "symlink", "--report")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_eval_report_on_a_file_is_refused_before_the_work(models, tmp_path: Path) -> None:
    """Issue 22.8: --report naming an existing file fails at once (before any model loads), not after the run."""
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    proc = run_zoo("eval", "bisenet", "--data", str(_labelled(tmp_path / "data")), "--report", str(existing))
    refused(proc, str(existing), "--report")
    assert "evaluating" not in proc.stderr and existing.read_text() == "mine"


def test_eval_report_in_a_read_only_folder_is_refused_before_the_work(models, tmp_path: Path) -> None:
    """Issue 22.8: a read-only folder (a read-only tmpfs: root ignores file modes) is refused before the work."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
    try:
        proc = run_zoo("eval", "bisenet", "--data", str(_labelled(tmp_path / "data")), "--report", str(ro / "rep"))
        refused(proc, str(ro / "rep"), "--report")
        assert "evaluating" not in proc.stderr
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_eval_prints_results_before_a_report_that_cannot_be_written(models, tmp_path: Path) -> None:
    """Issue 22.8: when writing the report fails after the work (eval.json turned out to be a folder), the results
    table was already printed."""
    models.install_converted("bisenet")
    out = tmp_path / "rep"
    (out / "eval.json").mkdir(parents=True)
    proc = run_zoo("eval", "bisenet", "--data", str(_labelled(tmp_path / "data")), "--report", str(out))
    assert proc.returncode == 1 and "mIoU" in proc.stdout and BUG not in proc.stderr, (proc.stdout, proc.stderr)
    assert "eval.json" in proc.stderr


# ---- 9. a plugin that exits, or raises anything, on import is listed broken and breaks nothing ----------------------

EXITING_MODULES = {  # what a plugin module does when imported: a growing list
    "exits": "import sys\nsys.exit(3)\n",
    "interrupts": "raise KeyboardInterrupt\n",
    "generator-exit": "raise GeneratorExit\n",
    "base-exception": "class Odd(BaseException):\n    pass\nraise Odd('odd')\n",
    "recursion": "def f():\n    return f()\nf()\n",
}


def _exiting_dist(root: Path, group: str) -> dict[str, str]:
    """A distribution whose every entry point of ``group`` names a module from EXITING_MODULES; env for subprocesses."""
    import os

    info = root / "zoo_exiting-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-exiting\nVersion: 1.0\n")
    eps = "".join(f"{case.replace('-', '')} = zoo_x_{case.replace('-', '_')}:SPEC\n" for case in EXITING_MODULES)
    (info / "entry_points.txt").write_text(f"[{group}]\n{eps}")
    for case, code in EXITING_MODULES.items():
        (root / f"zoo_x_{case.replace('-', '_')}.py").write_text(code)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}


@pytest.mark.parametrize("group", ["zoo.architectures", "zoo.backends"])
def test_plugin_that_exits_on_import_is_listed_broken(group: str, tmp_path: Path) -> None:
    """Issue 22.9: sys.exit(3), KeyboardInterrupt, ... on import: every command still works, 'zoo plugins' lists each
    plugin as broken with its reason."""
    env = _exiting_dist(tmp_path / "site", group)
    listed = run_zoo("plugins", "--json", env=env, check=True)
    broken = {p["name"]: p["error"] for p in json.loads(listed.stdout) if p.get("error")}
    for case in EXITING_MODULES:
        assert case.replace("-", "") in broken, (case, broken)
    assert "SystemExit" in broken["exits"] and "KeyboardInterrupt" in broken["interrupts"]
    assert "fcn" in run_zoo("list", env=env, check=True).stdout
    assert run_zoo("info", "bisenet", env=env, check=True).returncode == 0


# ---- 10. the generic fallback: each hostile input gets a named refusal -----------------------------------------------

RUNNER = """from zoo.registry.spec import Backend
SPEC = Backend('raising', 'a runner that raises', ('onnx',), 'zoo_raising_runner:open_runner')
"""
RUNNER_MODULE = """class Runner:
    def describe(self):
        return {}

    def run(self, x):
        raise ZeroDivisionError('the runner divided by zero')


def open_runner(path, *, device='cpu', threads=None, precision='fp32'):
    if {at_open}:
        raise LookupError('the runner could not open it')
    return Runner()
"""


@pytest.mark.parametrize("at_open", [True, False])
def test_backend_runner_that_raises_is_a_named_refusal(at_open: bool, models, tmp_path: Path) -> None:
    """Issue 22.10: a third-party backend whose runner raises (when opening the model, or on an image) is a
    BackendError naming the backend, not 'a bug in zoo'."""
    import os

    import cv2
    import numpy as np

    root = tmp_path / "site"
    info = root / "zoo_raising-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-raising\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[zoo.backends]\nraising = zoo_raising:SPEC\n")
    (root / "zoo_raising.py").write_text(RUNNER)
    (root / "zoo_raising_runner.py").write_text(RUNNER_MODULE.replace("{at_open}", str(at_open)))
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    models.install_converted("bisenet")
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((32, 64, 3), 100, np.uint8))
    proc = run_zoo("run", "bisenet", str(image), "--backend", "raising", "-o", str(tmp_path / "out"), env=env)
    refused(proc, "backend 'raising'", "LookupError" if at_open else "ZeroDivisionError", "--backend")
    run_zoo("run", "bisenet", str(image), "-o", str(tmp_path / "out"), env=env, check=True)


HOSTILE_REGISTRIES = {  # a growing table: registry file bytes → a word the refusal must contain
    "bad-ipv6-url": (b'schema = 1\n[models.m]\narchitecture = "fcn"\n[models.m.inference]\nurls = ["http://[::1/m.tar"]\n',
                     "not a valid URL"),
    "bad-port": (b'schema = 1\n[models.m]\narchitecture = "fcn"\n[models.m.inference]\nurls = ["http://h:99999/m"]\n',
                 "not a valid URL"),
    "newline-in-url": (b'schema = 1\n[models.m]\narchitecture = "fcn"\n[models.m.inference]\nurls = ["http://h/m\\n"]\n',
                       "control character"),
    "deep-toml": (b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    "not-utf8": (b"schema = 1\n# caf\xe9\n", "not UTF-8"),
    "num-classes-negative": (b'schema = 1\n[models.m]\narchitecture = "fcn"\nnum_classes = -5\n'
                             b'[models.m.inference]\nurls = ["http://h/m.tar"]\n', "num_classes"),
    "num-classes-zero": (b'schema = 1\n[models.m]\narchitecture = "fcn"\nnum_classes = 0\n'
                         b'[models.m.inference]\nurls = ["http://h/m.tar"]\n', "num_classes"),
    "num-classes-huge": (b'schema = 1\n[models.m]\narchitecture = "fcn"\nnum_classes = 1000000000000\n'
                         b'[models.m.inference]\nurls = ["http://h/m.tar"]\n', "num_classes"),
    "name-with-newline": (b'schema = 1\n[models."x\\n"]\narchitecture = "fcn"\n[models."x\\n".inference]\n'
                          b'urls = ["http://h/m.tar"]\n', "model names"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_REGISTRIES))
def test_hostile_registry_is_a_named_refusal(case: str, tmp_path: Path) -> None:
    """Issue 22.10 and 22.12: each hostile registry file is refused naming the file; without it zoo works."""
    data, word = HOSTILE_REGISTRIES[case]
    path = tmp_path / "hostile.toml"
    path.write_bytes(data)
    for args in (["list"], ["info", "m"], ["pull", "m"]):
        refused(run_zoo("--registry", str(path), *args), str(path), word)
    assert "fcn" in run_zoo("list", check=True).stdout


def test_registry_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    """Issue 22.10: '--registry' naming a FIFO used to block forever on open(); now it is refused at once."""
    import os

    fifo = tmp_path / "registry.toml"
    os.mkfifo(fifo)
    refused(run_zoo("--registry", str(fifo), "list", timeout=60), str(fifo), "not a regular file")


def test_huge_num_classes_from_a_cached_ref_is_refused(models, tmp_path: Path) -> None:
    """Issue 22.6: num_classes 10**12 in the registry entry a ref (or an imported bundle) carries is a named refusal,
    not a 7 TiB allocation."""
    models.install("fcn")
    ref = cache.get_ref("fcn")
    ref["paddle"]["entry"] = {"architecture": "fcn", "num_classes": 10**12, "artifacts": {}}
    (cache.refs_dir() / "orphan.json").write_text(json.dumps(ref))  # a model no registry names: the ref describes it
    image = tmp_path / "in.png"
    _png(image)
    refused(run_zoo("run", "orphan", str(image), "-o", str(tmp_path / "out")), "num_classes", "1024")


def _png(path: Path, h: int = 32, w: int = 64) -> Path:
    import cv2
    import numpy as np

    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))
    return path


@pytest.mark.parametrize("size", ["1x1", "8x8", "99999x99999", "0x5", "nanxnan"])
def test_size_outside_the_bounds_is_a_usage_error(size: str) -> None:
    """Issue 22.6 and 22.10: --size 1x1 (an empty feature map) and 99999x99999 (a 115 GB tensor) are refused."""
    for command in (["verify", "fcn"], ["bench", "fcn"], ["quantize", "fcn", "--precision", "int8", "--calib-synthetic", "2"]):
        proc = run_zoo(*command, "--size", size)
        refused(proc, "--size")
        assert proc.returncode == 2


@pytest.mark.parametrize("scales", ["1e9", "inf", "nan", "0", "5"])
def test_scales_outside_the_bounds_are_refused(scales: str, tmp_path: Path) -> None:
    proc = run_zoo("eval", "fcn", "--data", str(_labelled(tmp_path / "d")), "--scales", scales)
    refused(proc, "--scales")


@pytest.mark.parametrize("uri,word", [("s3://zoo-no-bucket/a.png", "s3fs"), ("bogus://host/a.png", "bogus")])
def test_uri_input_without_its_filesystem_is_a_named_refusal(uri: str, word: str, models, tmp_path: Path) -> None:
    """Issue 22.10: an s3:// input without s3fs installed, and an unknown bogus:// protocol: the Ray engine names
    what to install or fix; the local engine says it reads local files."""
    models.install_converted("fcn")
    refused(run_zoo("run", "fcn", uri, "--engine", "ray", "-o", str(tmp_path / "out")), uri, word)
    refused(run_zoo("run", "fcn", uri, "-o", str(tmp_path / "out")), uri, "--engine ray")
    assert not (tmp_path / "out").exists()


def test_unpinned_download_is_capped(http_server, use_registry) -> None:  # noqa: F811
    """Issue 22.10: a download with no published size stops at ZOO_MAX_DOWNLOAD (announced, or streamed without a
    length) and keeps nothing."""
    import os

    data = os.urandom(300_000)
    use_registry({"m": {"inference": http_server.add("/m.tar", data)},
                  "n": {"inference": http_server.add("/n.tar", data, length="close")}})  # fmt: skip
    for name in ("m", "n"):
        line = refused(run_zoo("pull", name, "--quiet", env={**NET, "ZOO_MAX_DOWNLOAD": "100000"}), "ZOO_MAX_DOWNLOAD")
        assert "100000" in line
        assert leftovers() == [] and pins.get(f"{name}/inference") is None
    refused(run_zoo("pull", "m", "--quiet", env={**NET, "ZOO_MAX_DOWNLOAD": "-1"}), "ZOO_MAX_DOWNLOAD")


HOSTILE_METADATA = {  # zoo.* key → value written into a real converted model's metadata_props
    "input-a-list": ("input", "[1, 2]"),
    "input-mean-a-string": ("input", '{"mean": "abc"}'),
    "input-size-huge": ("input", '{"size_policy": "resize", "size": [100000, 100000]}'),
    "input-size-a-number": ("input", '{"size_policy": "resize", "size": 5}'),
    "input-std-zero": ("input", '{"std": [0, 0, 0]}'),
    "input-scale-nan": ("input", '{"scale": NaN}'),
    "input-layout-unknown": ("input", '{"layout": "NCDHW"}'),
    "input-not-json": ("input", "{oops"),
    "input-pad-huge": ("input", '{"pad": [100000, 100000]}'),
    "input-pad-value-a-string": ("input", '{"pad_value": "grey"}'),
    "input-keep-ratio-a-string": ("input", '{"keep_ratio": "yes"}'),
    "input-deep": ("input", "[" * 100_000 + "]" * 100_000),
    "num-classes-huge": ("num_classes", str(10**12)),
    "num-classes-negative": ("num_classes", "-5"),
    "num-classes-a-string": ("num_classes", '"19"'),
    "labels-a-number": ("labels", "5"),
    "palette-short-colour": ("palette", "[[1, 2]]"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_METADATA))
def test_wrong_onnx_metadata_is_a_named_refusal(case: str, models, tmp_path: Path) -> None:
    """Issue 22.6 and 22.10: wrong types or sizes in an .onnx file's zoo.* metadata (a 100000x100000 resize, 10**12
    classes) are refused naming the key, before any allocation."""
    import onnx

    key, value = HOSTILE_METADATA[case]
    model = onnx.load(str(models.install_converted("bisenet")))
    props = {p.key: p.value for p in model.metadata_props}
    props[f"zoo.{key}"] = value
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    hostile = tmp_path / "hostile.onnx"
    onnx.save(model, str(hostile))
    image = _png(tmp_path / "in.png")
    proc = run_zoo("run", str(hostile), str(image), "-o", str(tmp_path / "out"))
    refused(proc, f"zoo.{key}", "zoo convert")


# ---- 6 and 7. label maps: decoder caps from the header, ids outside the classes named, 0 usable images fail ---------


def png_header_only(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG whose IHDR claims width x height, followed by a tiny (truncated) IDAT and IEND: a decoder that trusts the
    header allocates width * height * bytes-per-pixel before it finds out."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    extra = chunk(b"PLTE", b"\0\0\0" * 4) if colour_type == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))  # fmt: skip


def jpeg_dataset(root: Path, n: int = 3) -> Path:
    """A folders-layout data set whose images are JPEGs (so no PNG header comparison catches a label's size)."""
    import cv2

    path = _labelled(root, n)
    for png in sorted((path / "images").iterdir()):
        cv2.imwrite(str(png.with_suffix(".jpg")), cv2.imread(str(png)))
        png.unlink()
    return path


HUGE_LABELS = {
    "50000x50000": png_header_only(50_000, 50_000),
    "9000x9000-16bit": png_header_only(9_000, 9_000, bit_depth=16),
    "50000x50000-paletted": png_header_only(50_000, 50_000, colour_type=3),
}


@pytest.mark.parametrize("case", sorted(HUGE_LABELS))
def test_label_whose_header_is_huge_is_refused_before_decoding(case: str, models, tmp_path: Path) -> None:
    """Issue 22.6: a label PNG whose header claims 50000x50000 (or 9000x9000 16-bit, or paletted) is refused from its
    header with the images' cap, naming the file; --skip-bad skips it and scores the others."""
    models.install_converted("bisenet")
    data = jpeg_dataset(tmp_path / "d")
    bad = sorted((data / "labels").iterdir())[0]
    bad.write_bytes(HUGE_LABELS[case])
    refused(run_zoo("eval", "bisenet", "--data", str(data)), bad.name, "megapixel")
    proc = run_zoo("eval", "bisenet", "--data", str(data), "--skip-bad", "--json", check=True)
    got = json.loads(proc.stdout)
    assert got["images"] == 2 and got["skipped"] == 1, got


def test_label_ids_outside_the_classes_are_an_error_naming_them(models, tmp_path: Path) -> None:
    """Issue 22.7: ids 50 (8-bit) or up to 900 (16-bit) in a 19-class model's labels were counted silently; now the
    error names the file and the ids, and --skip-bad skips that image."""
    import cv2
    import numpy as np

    models.install_converted("bisenet")
    data = _labelled(tmp_path / "d")
    first, second = sorted((data / "labels").iterdir())
    label = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    label[:2, :3] = 50
    cv2.imwrite(str(first), label)
    line = refused(run_zoo("eval", "bisenet", "--data", str(data)), first.name, "50 (6 px)", "19 classes")
    assert "255" in line
    wide = cv2.imread(str(second), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    wide[0, :4] = 900
    cv2.imwrite(str(second), wide)
    first.write_bytes(cv2.imencode(".png", np.zeros_like(label))[1].tobytes())  # fixed
    refused(run_zoo("eval", "bisenet", "--data", str(data)), second.name, "900 (4 px)")
    got = json.loads(run_zoo("eval", "bisenet", "--data", str(data), "--skip-bad", "--json", check=True).stdout)
    assert got["images"] == 1 and got["skipped"] == 1


def test_ignore_unknown_ids_counts_them_as_ignored_with_a_warning(models, tmp_path: Path) -> None:
    """Issue 22.7, the explicit option: --ignore-unknown-ids scores the image with those pixels ignored and warns once
    with the ids and their pixel counts; the numbers equal the same data with those pixels marked 255 by hand, and the
    Ray engine reports the same."""
    import shutil

    import cv2
    import numpy as np

    models.install_converted("bisenet")
    data = _labelled(tmp_path / "d")
    by_hand = Path(shutil.copytree(data, tmp_path / "by-hand"))
    first, second = sorted((data / "labels").iterdir())
    for path, value, rows in ((first, 50, slice(0, 2)), (second, 900, slice(5, 8))):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16 if value > 255 else np.uint8)
        ignored = label.copy()
        label[rows, :5] = value
        ignored[rows, :5] = 255
        cv2.imwrite(str(path), label)
        cv2.imwrite(str(by_hand / "labels" / path.name), ignored)
    common = ("eval", "bisenet", "--data", str(data), "--json", "--ignore-unknown-ids")
    proc = run_zoo(*common, check=True)
    got = json.loads(proc.stdout)
    assert (got["images"], got["skipped"], got["unknown_images"]) == (2, 0, 2), got
    assert got["unknown_ids"] == {"50": 10, "900": 15}, got["unknown_ids"]
    warned = [line for line in proc.stderr.splitlines() if line.startswith("zoo: warning:")]
    assert warned == ["zoo: warning: 2 image(s) held label ids outside the model's 19 classes, counted as ignored "
                      "(--ignore-unknown-ids): 50 (10 px), 900 (15 px)"], proc.stderr  # fmt: skip
    manual = json.loads(run_zoo("eval", "bisenet", "--data", str(by_hand), "--json", check=True).stdout)

    def scores(doc: dict) -> dict:  # every metric (the scored pixel counts move acc and kappa), not the timing
        ran = ("images_per_second", "threads", "options")  # nor how it ran (a Ray worker has 1 thread here, local 2)
        return {k: v for k, v in doc["backends"]["onnx"].items() if k not in ran}

    assert scores(got) == scores(manual)
    assert manual["unknown_ids"] == {} and manual["unknown_images"] == 0
    on_ray = json.loads(run_zoo(*common, "--engine", "ray", "--workers", "1", check=True).stdout)
    assert (on_ray["unknown_ids"], on_ray["unknown_images"]) == (got["unknown_ids"], 2)
    assert scores(on_ray) == scores(got)


def test_eval_over_zero_usable_images_fails(models, tmp_path: Path) -> None:
    """Issue 22.7: --skip-bad with every sample bad used to report a result over 0 images and exit 0."""
    models.install_converted("bisenet")
    data = _labelled(tmp_path / "d")
    for label in (data / "labels").iterdir():
        label.write_bytes(b"not a png")
    proc = run_zoo("eval", "bisenet", "--data", str(data), "--skip-bad")
    refused(proc, "no usable image", "fix the data set")
    assert "mIoU" not in proc.stdout


def test_huge_label_fails_one_pair_not_the_ray_job(models, tmp_path: Path) -> None:
    """Issue 22.6 on Ray: the label with a 50000x50000 header is refused by name (no worker allocates it); with
    --skip-bad it is skipped and the other images are scored."""
    models.install_converted("bisenet")
    data = jpeg_dataset(tmp_path / "d")
    bad = sorted((data / "labels").iterdir())[0]
    bad.write_bytes(HUGE_LABELS["50000x50000"])
    ray = ["--engine", "ray", "--workers", "1"]
    refused(run_zoo("eval", "bisenet", "--data", str(data), *ray), bad.name, "megapixel")
    proc = run_zoo("eval", "bisenet", "--data", str(data), *ray, "--skip-bad", "--json", check=True)
    got = json.loads(proc.stdout)
    assert got["images"] == 2 and got["skipped"] == 1, got


# ---- 2. every request runs under ZOO_DEADLINE, the mirror's zoo.lock included ------------------------------------------


@pytest.mark.parametrize("part", ["headers", "body"])
def test_trickling_mirror_lock_is_bounded_by_the_deadline(part: str, http_server, use_registry) -> None:  # noqa: F811
    """Issue 22.2: a --mirror whose zoo.lock trickles its headers (or body) one byte every 0.3 s, each gap under
    ZOO_TIMEOUT: ZOO_DEADLINE=4 gives up on the mirror after ~4 s and the pull goes on from the registry's URL."""
    import time

    lock = json.dumps({"m/inference": {"sha256": "sha256:" + "0" * 64, "size": 1}}).encode()
    padding = b" " * 200 if part == "body" else b""  # headers alone outlast the deadline; a long body after them
    http_server.add("/mirror/zoo.lock", lock + padding, trickle=0.3,
                    content_type="application/json" + ("; x=" + "a" * 100 if part == "headers" else ""))
    use_registry({"m": {"inference": http_server.add("/m.tar", model_tar(top="m"))}})
    start = time.monotonic()
    proc = run_zoo("pull", "m", "--quiet", "--mirror", http_server.url("/mirror"),
                   env={**NET, "ZOO_DEADLINE": "4"}, timeout=120)  # fmt: skip
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert took < 30, took  # the mirror lock used to have no deadline at all: 45 s and more
    assert len(http_server.requests("/mirror/zoo.lock")) == 1


# ---- 4. bundle import checks what pull checks: a conversion of another network never answers for this one --------------


def _tar_files(path: Path) -> dict[str, bytes]:
    import tarfile

    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def _write_bundle(files: dict[str, bytes], dest: Path) -> Path:
    """A bundle of ``files`` whose bundle.json lists each one with its true hash: only the content lies."""
    import io
    import tarfile

    from zoo.make import bundle

    index = json.loads(files[bundle.INDEX])
    index["files"] = {n: {"sha256": cache.sha256_bytes(d), "size": len(d)} for n, d in files.items() if n != bundle.INDEX}
    files = {**files, bundle.INDEX: json.dumps(index).encode()}
    with tarfile.open(dest, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return dest


def _retree(files: dict[str, bytes], sub: str, key: str, changes: dict[str, bytes]) -> str:
    """Replace files of the bundled entry ``sub/key``, with a consistent manifest and key; return the new key."""
    prefix = f"{sub}/{key}/"
    content = {n[len(prefix):]: d for n, d in files.items() if n.startswith(prefix) and not n.endswith(cache.MANIFEST)}
    manifest = json.loads(files[prefix + cache.MANIFEST])
    content.update(changes)
    manifest["files"] = {n: {"sha256": cache.sha256_bytes(d), "size": len(d)} for n, d in content.items()}
    new = cache.tree_key(manifest["files"])
    manifest["key"] = new
    for name in [n for n in files if n.startswith(prefix)]:
        del files[name]
    for name, data in content.items():
        files[f"{sub}/{new}/{name}"] = data
    files[f"{sub}/{new}/{cache.MANIFEST}"] = json.dumps(manifest).encode()
    return new


@pytest.fixture
def bisenet_bundles(models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(good bundle of bisenet, files of the foreign conversion: another bisenet's ONNX entry); then a fresh home."""
    from zoo.make import bundle

    foreign_onnx = models.install_converted("bisenet", seed=1)
    foreign = {f"onnx/{foreign_onnx.parent.name}/{p.name}": p.read_bytes() for p in foreign_onnx.parent.iterdir()}
    models.install_converted("bisenet")
    good = bundle.export_bundle(["bisenet"], tmp_path / "good.tar").path
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "fresh"))
    return good, foreign, foreign_onnx.parent.name


@pytest.mark.parametrize("claim", ["claims-this-model", "claim-dropped"])
def test_bundle_with_another_networks_onnx_is_refused(claim: str, bisenet_bundles, tmp_path: Path) -> None:
    """Issue 22.4: a bundle whose bisenet ref points its ONNX at a conversion of another network (claiming this
    model's Paddle program, or claiming nothing) is refused; the good bundle then imports and runs."""
    good, foreign, foreign_key = bisenet_bundles
    files = {**_tar_files(good), **foreign}
    ref = json.loads(files["refs/bisenet.json"])
    record = {**ref["onnx"], "key": foreign_key}
    for k in ("from", "derived_from"):
        record.pop(k, None)
    if claim == "claims-this-model":
        record["from"] = record["derived_from"] = ref["paddle"]["key"]
    ref["onnx"] = record
    files["refs/bisenet.json"] = json.dumps(ref).encode()
    bad = _write_bundle(files, tmp_path / "bad.tar")
    refused(run_zoo("bundle", "import", str(bad)), "refs/bisenet.json", "nothing was imported")
    assert leftovers() == []
    run_zoo("bundle", "import", str(good), check=True)
    run_zoo("run", "bisenet", str(_png(tmp_path / "in.png")), "-o", str(tmp_path / "out"), "--offline", check=True)


@pytest.mark.parametrize("damage", ["truncated-params", "garbage-onnx"])
def test_bundle_whose_hashes_agree_but_content_is_broken_is_refused(damage: str, bisenet_bundles, tmp_path) -> None:
    """Issue 22.4: truncated params, or a garbage model.onnx, with every hash, manifest and key consistent."""
    good, _, _ = bisenet_bundles
    files = _tar_files(good)
    ref = json.loads(files["refs/bisenet.json"])
    if damage == "truncated-params":
        key = ref["paddle"]["key"]
        params = files[f"models/{key}/{cache.PARAMS_FILE}"]
        ref["paddle"]["key"] = _retree(files, "models", key, {cache.PARAMS_FILE: params[: len(params) // 2]})
        ref.pop("onnx")  # a Paddle-only bundle: the params check alone must refuse it
        for name in [n for n in files if n.startswith("onnx/")]:
            del files[name]
    else:
        ref["onnx"]["key"] = _retree(files, "onnx", ref["onnx"]["key"], {"model.onnx": b"garbage" * 100})
    files["refs/bisenet.json"] = json.dumps(ref).encode()
    bad = _write_bundle(files, tmp_path / "bad.tar")
    refused(run_zoo("bundle", "import", str(bad)), "not a usable model", "nothing was imported")
    assert leftovers() == []
    run_zoo("bundle", "import", str(good), check=True)


def test_bundle_entry_with_huge_num_classes_is_refused(bisenet_bundles, tmp_path: Path) -> None:
    """Issue 22.6: num_classes 10**12 in the registry entry a bundle's ref carries is refused at import."""
    good, _, _ = bisenet_bundles
    files = _tar_files(good)
    ref = json.loads(files["refs/bisenet.json"])
    ref["paddle"]["entry"] = {"architecture": "bisenet", "num_classes": 10**12}
    files["refs/bisenet.json"] = json.dumps(ref).encode()
    refused(run_zoo("bundle", "import", str(_write_bundle(files, tmp_path / "bad.tar"))), "num_classes")
    assert leftovers() == []


# ---- 8. a full disk is named as one, with the bytes needed --------------------------------------------------------------


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_quantize_on_a_full_disk_names_it_before_the_work(precision: str, models, tmp_path: Path, monkeypatch) -> None:
    """Issue 22.8: 'zoo quantize' with too little space used to say "Wire format was corrupt"; now it names the full
    disk, the folder and the bytes needed, before calibrating, and leaves nothing behind."""
    import shutil
    import subprocess

    onnx = models.install_converted("bisenet")
    used = sum(p.stat().st_size for p in cache.root().rglob("*") if p.is_file())
    home = tmp_path / "small"
    home.mkdir()
    kib = (used + onnx.stat().st_size) // 1024 + 256  # room for the models, not for the variant's working copies
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(home)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(cache.root(), home / "cache")
        monkeypatch.setenv("ZOO_HOME", str(home))
        extra = ["--calib-synthetic", "2", "--size", "64x128"] if precision == "int8" else []
        proc = run_zoo("quantize", "bisenet", "--precision", precision, *extra)
        line = refused(proc, "no space left", str(cache.onnx_dir()), "bytes")
        assert "needs" in line and "Wire format" not in line
        assert not [p for p in cache.onnx_dir().iterdir() if p.name.startswith(".")]
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


# ---- 12. smaller ones ------------------------------------------------------------------------------------------------


def test_fp16_exclude_of_an_unknown_op_is_refused(models) -> None:
    """Issue 22.12: '--precision fp16 --exclude Nonsense' was accepted silently (it blocked nothing)."""
    models.install_converted("bisenet")
    refused(run_zoo("quantize", "bisenet", "--precision", "fp16", "--exclude", "Nonsense"), "Nonsense", "Conv")
    assert "onnx-fp16" not in cache.get_ref("bisenet")
    run_zoo("quantize", "bisenet", "--precision", "fp16", "--exclude", "Resize", check=True)


@pytest.mark.parametrize("top", [None, "packed"])
def test_pull_onnx_reads_a_zip(top: str | None, http_server, use_registry) -> None:  # noqa: F811
    """Issue 22.12: the ONNX path of pull read tars only; a zip holding one .onnx is read like a tar."""
    from tests.test_archive import zip_bytes
    from tests.test_pull import onnx_bytes

    name = f"{top}/model.onnx" if top else "model.onnx"
    use_registry({"z": {"onnx": http_server.add("/z.zip", zip_bytes([(name, onnx_bytes())]))}})
    run_zoo("pull", "z", "--format", "onnx", "--quiet", env=NET, check=True)
    path = Path(run_zoo("cache", "path", "z", "--format", "onnx", check=True).stdout.strip())
    assert path.read_bytes() == onnx_bytes()


def test_verify_report_on_a_file_is_refused_before_the_work(models, tmp_path: Path) -> None:
    """Issue 22.8 for verify: --report naming an existing file fails before any model is run."""
    models.install_converted("bisenet")
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    proc = run_zoo("verify", "bisenet", "--report", str(existing), "--size", "64x128", "--count", "1")
    refused(proc, str(existing), "--report")
    assert "verifying" not in proc.stderr and existing.read_text() == "mine"
