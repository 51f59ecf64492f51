"""Backend plugins: the contract, held for every discovered backend; a third-party package; broken ones.

The expected outputs come from a bare onnxruntime session with its default options on the same converted file — not
from zoo's runners.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.discovered import declared
from zoo.registry import backends, catalog, plugins
from zoo.runners import runtime
from zoo.errors import BackendError
from zoo.registry.spec import Backend
from zoo.synthetic import street_scene

NAME = "unet-tiny"
ORTX_DIST = Path(__file__).parent / "plugins" / "zoo_ortx_dist"
BUILTINS = declared("zoo.backends")  # what pyproject.toml registers, read without zoo


def _discovered_with_ortx() -> list[str]:
    """What discovery finds with the test package installed (the parametrization is over what is found)."""
    sys.path.insert(0, str(ORTX_DIST))
    try:
        return [p.name for p in backends.discover() if p.usable]
    finally:
        sys.path.remove(str(ORTX_DIST))


DISCOVERED = _discovered_with_ortx()


@pytest.fixture
def ortx(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The zoo-ortx test package installed for this test and its subprocesses, as zoo-unet is."""
    monkeypatch.syspath_prepend(str(ORTX_DIST))
    path = os.pathsep.join(p for p in (str(ORTX_DIST), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return {"PYTHONPATH": path}


def _bare_ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_the_test_package_is_discovered_beside_the_builtins():
    assert set(BUILTINS) | {"ortx"} <= set(DISCOVERED)


def test_builtins_register_through_entry_points():
    found = {p.name: p for p in backends.discover()}
    for name, value in BUILTINS.items():
        plugin = found[name]
        assert plugin.distribution == "zoo" and plugin.value == value and plugin.backend is not None
    proc = subprocess.run([sys.executable, "-c", "import sys; from zoo.registry import backends; backends.discover(); "
                           "print(sorted(m for m in ('zoo.runners.ort', 'zoo.runners.paddle', 'onnxruntime', "
                           "'paddle') if m in sys.modules))"], capture_output=True, text=True, check=True)  # fmt: skip
    assert proc.stdout.strip() == "[]"  # discovery imports no runner and no engine


def test_backend_spec_is_frozen_and_every_field_is_commented():
    spec = backends.get("onnx")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    source = Path(sys.modules["zoo.registry.spec"].__file__).read_text()
    body = source.split("class Backend", 1)[1].split('"""', 2)[2]  # after the docstring
    fields = [ln for ln in body.splitlines() if ln.startswith("    ") and ": " in ln]
    assert {f.name for f in dataclasses.fields(Backend)} == {ln.split(":")[0].strip() for ln in fields}
    assert all("  # " in ln for ln in fields), fields


@pytest.mark.parametrize("backend", DISCOVERED)
def test_every_backend_runs_the_model_like_a_bare_session(backend, models, ortx):
    """The contract: open_runner(path, device=, threads=, precision=) → run(x) = the model's first output, describe()."""
    # openvino-paddle reads legacy Paddle programs only (what published archives hold)
    onnx_path = models.install_converted(NAME, legacy=backend == "openvino-paddle")
    model = runtime.load(NAME, backend=backend, threads=1)
    assert model.backend == backend
    rgb = street_scene(48, 64, seed=11)
    x = model.prepare(rgb)
    got, expected = model.infer(x), _bare_ort(onnx_path, x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    described = model.runner.describe()
    if str(described["engine"]).startswith("onnxruntime"):
        np.testing.assert_array_equal(got, expected)  # same file, same engine: exact
    else:  # another engine (on the ONNX file or the Paddle model): the label agreement zoo verify demands
        assert (got == expected).mean() >= 0.9999
    described = model.runner.describe()
    assert {"engine", "version", "providers", "threads", "precision", "options"} <= set(described)
    assert described["threads"] == 1 and described["precision"] == "fp32" and described["providers"]
    json.dumps(described)


def test_third_party_backend_in_choices_plugins_run_and_bench(models, ortx, tmp_path: Path):
    models.install_converted(NAME)
    listed = json.loads(run_zoo("plugins", "--json", env=ortx, check=True).stdout)
    row = next(p for p in listed if p.get("kind") == "backend" and p["name"] == "ortx")
    assert (row["distribution"], row["version"], row["usable"], row["formats"]) == ("zoo-ortx", "0.2.0", True, ["onnx"])
    table = run_zoo("plugins", env=ortx, check=True).stdout
    assert any(ln.split()[:3] == ["ortx", "onnx", "zoo-ortx"] and ln.endswith("ok") for ln in table.splitlines())
    # an unknown name is refused with the registered choices, which include the plugin's
    refused = run_zoo("run", NAME, "x.png", "--backend", "nope", env=ortx)
    assert refused.returncode == 2 and "'ortx'" in refused.stderr and "'onnx'" in refused.stderr
    without = os.pathsep.join(p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p != str(ORTX_DIST))
    assert "'ortx'" not in run_zoo("run", NAME, "x.png", "--backend", "nope", env={"PYTHONPATH": without}).stderr
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), street_scene(48, 64, seed=2)[:, :, ::-1])
    ran = run_zoo("run", NAME, str(image), "--backend", "ortx", "--threads", "1", "--out", str(tmp_path / "o"),
                  "--json", env=ortx, check=True)  # fmt: skip
    summary = json.loads(ran.stdout)[0]
    assert summary["backend"] == "ortx"
    bench = json.loads(run_zoo("bench", NAME, "--backend", "ortx", "--size", "32x48", "--warmup", "0", "--runs", "2",
                               "--threads", "1", "--json", env=ortx, check=True).stdout)  # fmt: skip
    stats = bench["backends"]["ortx/fp32"]
    assert stats["config"]["graph_optimization_level"] == "ORT_ENABLE_BASIC"  # its own options, as it describes them
    assert stats["config"]["execution_mode"] == "ORT_PARALLEL" and stats["threads"] == 1
    verified = run_zoo("verify", NAME, "--backend", "onnx,ortx", "--size", "32x48", "--count", "1", "--json",
                       env=ortx, check=True)  # fmt: skip
    doc = json.loads(verified.stdout)
    assert doc["passed"] and (doc["reference"], doc["candidate"]) == ("onnx/fp32", "ortx/fp32")
    assert doc["backends"]["ortx/fp32"]["engine"] == "onnxruntime (zoo-ortx)"


def _fake_backends(root: Path, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    info = root / "zoo_badbackends-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-badbackends\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[zoo.backends]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, code in modules.items():
        (root / f"{name}.py").write_text(code)
    return root


def test_broken_backends_are_listed_and_break_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = "from zoo.registry.spec import Backend\n"
    root = _fake_backends(tmp_path / "site", {
        "importfail": "zoo_bb_importfail:BACKEND",
        "notspec": "zoo_bb_notspec:BACKEND",
        "needs": "zoo_bb_needs:BACKEND",
        "onnx": "zoo_bb_dup:BACKEND",
    }, {
        "zoo_bb_importfail": "import no_such_engine_anywhere\n",
        "zoo_bb_notspec": "BACKEND = {'name': 'notspec'}\n",
        "zoo_bb_needs": spec + "BACKEND = Backend('needs', 'x', ('onnx',), 'zoo_bb_needs:open', "
                               "requires=('no_such_engine_anywhere',), install='pip install needs-engine')\n",
        "zoo_bb_dup": spec + "BACKEND = Backend('onnx', 'impostor', ('onnx',), 'zoo_bb_dup:open')\n",
    })  # fmt: skip
    monkeypatch.syspath_prepend(str(root))
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    found = {(p.name, p.value): p for p in backends.discover()}
    assert "No module named 'no_such_engine_anywhere'" in found["importfail", "zoo_bb_importfail:BACKEND"].error
    assert "not a zoo.registry.spec.Backend" in found["notspec", "zoo_bb_notspec:BACKEND"].error
    needs = found["needs", "zoo_bb_needs:BACKEND"]
    assert needs.backend is not None and not needs.usable and "pip install needs-engine" in needs.error
    assert "duplicate backend name 'onnx'" in found["onnx", "zoo_bb_dup:BACKEND"].error
    assert backends.get("onnx").summary.startswith("ONNX Runtime")  # the built-in still wins
    with pytest.raises(BackendError, match="backend 'needs' cannot run here: needs no_such_engine_anywhere.*pip install"):
        backends.get("needs")
    with pytest.raises(BackendError, match="backend 'importfail' failed to load"):
        backends.get("importfail")
    listed = run_zoo("plugins", env=env, check=True).stdout
    assert "UNAVAILABLE: needs no_such_engine_anywhere" in listed and "BROKEN: ModuleNotFoundError" in listed
    assert run_zoo("list", env=env, check=True).returncode == 0
    assert "needs" in run_zoo("run", NAME, "x.png", "--backend", "nope", env=env).stderr  # still a choice


def test_zoo_backends_env_restricts_loading(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ZOO_BACKENDS", "onnx")
    assert backends.names() == ("onnx",)
    with pytest.raises(BackendError, match="excluded by ZOO_BACKENDS=onnx"):
        backends.get("paddle")


def test_one_entry_point_scan_and_one_registry_merge_per_process(models, tmp_path: Path):
    """A whole `zoo run NAME IMAGE` scans the installed distributions once (it used to be three times)."""
    models.install_converted(NAME)
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), street_scene(32, 48, seed=1)[:, :, ::-1])
    code = (
        "import importlib.metadata as md, sys\n"
        "real = md.entry_points\ncalls = []\n"
        "def counted(*a, **k):\n    calls.append(a or k)\n    return real(*a, **k)\n"
        "md.entry_points = counted\n"
        "import zoo.registry.entries as registry\nmerges = []\nreal_load = registry.load\n"
        "def counted_load(*a, **k):\n    merges.append(1)\n    return real_load(*a, **k)\n"
        "registry.load = counted_load\n"
        "from zoo.cli import main\n"
        f"code = main(['run', {NAME!r}, {str(image)!r}, '--out', {str(tmp_path / 'o')!r}, '--threads', '1'])\n"
        "print('SCANS', len(calls), 'MERGES', len(merges), 'EXIT', code, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("SCANS"))
    assert line == "SCANS 1 MERGES 1 EXIT 0", proc.stderr


def test_catalog_resolves_once_and_handles_are_frozen(models):
    handle = catalog.resolve(NAME)
    assert handle.architecture is plugins.get_architecture("unet") and handle.num_classes == 4
    assert catalog.current() is catalog.current()  # nothing changed: the same merge
    with pytest.raises(dataclasses.FrozenInstanceError):
        handle.name = "x"  # type: ignore[misc]
    model = runtime.load(handle, backend="paddle", threads=1) if models.install(NAME) else None
    assert model is not None and model.architecture is handle.architecture


# ---- roles and devices come from the specs --------------------------------------------------------------------------


def test_roles_come_from_the_specs(monkeypatch: pytest.MonkeyPatch):
    """One built-in claims each role; what runs unnamed (zoo.load, verify's pair, bench's rows) follows the specs."""
    builtin = [p.backend for p in backends.discover() if p.backend is not None and p.distribution == "zoo"]
    defaults, references = [b for b in builtin if b.default], [b for b in builtin if b.reference]
    assert len(defaults) == len(references) == 1 and defaults[0] is not references[0]
    assert backends.default_backend() is defaults[0] and backends.reference_backend() is references[0]
    assert backends.default_pair() == (references[0].name, defaults[0].name)
    assert "fp32" in references[0].precisions  # the reference is float32
    # with the role holders excluded, the first backend left stands in: a restricted install still runs
    others = sorted(set(backends.names()) - {defaults[0].name, references[0].name})
    if others:
        monkeypatch.setenv("ZOO_BACKENDS", ",".join(others))
        assert backends.default_backend().name == backends.reference_backend().name == others[0]


def test_a_third_party_default_does_not_displace_zoo_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = "from zoo.registry.spec import Backend\n"
    root = _fake_backends(tmp_path / "site", {"aaa": "zoo_bb_aaa:BACKEND"}, {
        "zoo_bb_aaa": spec + "BACKEND = Backend('aaa', 'x', ('onnx',), 'zoo_bb_aaa:open', default=True, reference=True)\n",
    })  # fmt: skip
    monkeypatch.syspath_prepend(str(root))
    assert backends.get("aaa").default  # loaded, and claims both roles
    builtin = {p.name for p in backends.discover() if p.distribution == "zoo"}
    assert backends.default_backend().name in builtin and backends.reference_backend().name in builtin


GPU_ONLY = '''
"""A backend that declares a GPU only (test): it runs the Paddle model on the CPU, but refuses to be opened for
anything but the device it declares, and reports the device and precision it was given."""
from zoo.registry.spec import Backend

BACKEND = Backend("gpuonly", "test: declares a GPU only", ("paddle",), "zoo_bb_gpuonly:open_runner",
                  devices=("gpu",), precisions=("fp32", "tf32"))


class Runner:
    def __init__(self, inner, device, precision):
        self.inner, self.device, self.precision = inner, device, precision

    def run(self, x):
        return self.inner.run(x)

    def describe(self):
        return {**self.inner.describe(), "engine": "gpuonly", "device": self.device, "precision": self.precision}


def open_runner(path, *, device="cpu", threads=None, precision="fp32"):
    if device != "gpu":
        raise RuntimeError(f"gpuonly was opened for {device}; it declares gpu only")
    from zoo.runners.paddle import open_runner as paddle_runner

    return Runner(paddle_runner(path, device="cpu", threads=threads), device, precision)
'''


def test_a_gpu_only_backend_is_verified_and_benched_on_its_device(models, tmp_path: Path):
    """device flows from the backend's declared devices through verify and bench (it used to be "cpu" for every
    backend), and bench takes the precisions a backend declares, not a fixed list."""
    root = _fake_backends(tmp_path / "site", {"gpuonly": "zoo_bb_gpuonly:BACKEND"}, {"zoo_bb_gpuonly": GPU_ONLY})
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    models.install_converted(NAME)
    verified = run_zoo("verify", NAME, "--backend", "onnx,gpuonly", "--size", "32x48", "--count", "1",
                       "--threads", "1", "--json", env=env)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert (doc["reference"], doc["candidate"]) == ("onnx/fp32", "gpuonly/fp32")
    assert doc["models"]["gpuonly/fp32"]["device"] == doc["backends"]["gpuonly/fp32"]["device"] == "gpu"
    assert doc["models"]["onnx/fp32"]["device"] == "cpu"  # each backend on its own first declared device
    bench = run_zoo("bench", NAME, "--backend", "gpuonly", "--precision", "tf32", "--size", "32x48", "--warmup", "0",
                    "--runs", "1", "--threads", "1", "--json", env=env)  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    row = json.loads(bench.stdout)["backends"]["gpuonly/tf32"]
    assert (row["device"], row["precision"]) == ("gpu", "tf32")
    refused = run_zoo("bench", NAME, "--backend", "gpuonly", "--precision", "int8", env=env)
    assert refused.returncode == 2 and "fp32, tf32" in refused.stderr  # what it declares, listed
