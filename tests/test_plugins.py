"""Plugin discovery through entry points: built-ins, a third-party package, and broken plugins."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.discovered import declared
from tests.models import UNET_DIST
from zoo.registry import plugins, entries as registry
from zoo.errors import PluginError
from zoo.registry.spec import CITYSCAPES_LABELS, Architecture, pseudo_color_palette

BUILTINS = declared("zoo.architectures")  # what pyproject.toml registers, read without zoo


def fake_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """An installed-looking distribution: modules plus a .dist-info with entry points, under root."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    eps = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[zoo.architectures]\n{eps}")
    for name, code in modules.items():
        (root / f"{name}.py").write_text(code)
    return root


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch) -> Path:
    root = fake_dist(
        tmp_path / "site",
        "zoo-broken",
        {
            "importfail": "zoo_importfail:PLUGIN",
            "raises": "zoo_raises:PLUGIN",
            "notspec": "zoo_notspec:PLUGIN",
            "fcn": "zoo_dupfcn:PLUGIN",
        },
        {
            "zoo_importfail": "import no_such_module_anywhere\n",
            "zoo_raises": "raise RuntimeError('plugin exploded at load')\n",
            "zoo_notspec": "PLUGIN = {'name': 'notspec'}\n",
            "zoo_dupfcn": "from zoo.registry.spec import Architecture\nPLUGIN = Architecture(name='fcn', summary='impostor')\n",
        },
    )
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    return root


def test_builtins_load_through_entry_points():
    found = {p.name: p for p in plugins.discover()}
    assert set(BUILTINS) <= set(found)
    for name in BUILTINS:
        plugin = found[name]
        assert plugin.error is None and plugin.distribution == "zoo" and plugin.version
        assert plugin.value == BUILTINS[name]
        arch = plugin.architecture
        assert isinstance(arch, Architecture) and arch.name == name
        assert arch.builder == f"zoo_{name}.network:build" and arch.labels == CITYSCAPES_LABELS
        assert (arch.input.color, arch.input.layout, arch.input.mean, arch.input.std) == (
            "RGB", "NCHW", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # fmt: skip
        # Cityscapes names draw in Cityscapes' official colours (cityscapesScripts helpers/labels.py: road, ..., bicycle)
        assert arch.colors()[:19][0] == (128, 64, 128) and arch.colors()[:19][13] == (0, 0, 142)
        assert arch.colors()[:19][18] == (119, 11, 32) and arch.colors()[:19] != pseudo_color_palette(19)


def test_pseudo_color_palette_is_paddleseg_s():
    # values of PaddleSeg's get_color_map_list(256) (checked against paddleseg 2.8): class c gets the colour of c + 1
    palette = pseudo_color_palette(256)
    assert palette[:5] == ((128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128))
    assert palette[6] == (128, 128, 128) and palette[7] == (64, 0, 0) and palette[18] == (128, 192, 0)
    assert len(set(palette)) == 256


def test_spec_is_frozen_and_every_field_is_commented():
    arch = plugins.get_architecture("fcn")
    with pytest.raises(AttributeError):
        arch.name = "x"  # type: ignore[misc]
    source = Path(__import__("zoo.registry.spec").registry.spec.__file__).read_text()
    for cls in ("class InputSpec", "class Architecture"):
        body = re.split(r"\n\n    (?:def |@)", source.split(cls, 1)[1], maxsplit=1)[0]  # the fields, up to a method
        fields = [line for line in body.splitlines() if line.startswith("    ") and ": " in line and " = " in line]
        assert fields and all("  # " in line for line in fields), fields


def test_broken_plugins_are_reported_and_never_break_other_commands(broken_plugins):
    found = {(p.name, p.value): p for p in plugins.discover()}
    errors = {p.value: p.error for p in found.values() if p.error}
    assert "No module named 'no_such_module_anywhere'" in errors["zoo_importfail:PLUGIN"]
    assert "plugin exploded at load" in errors["zoo_raises:PLUGIN"]
    assert "not a zoo.registry.spec.Architecture" in errors["zoo_notspec:PLUGIN"]
    dup = errors["zoo_dupfcn:PLUGIN"]
    assert "duplicate architecture name 'fcn'" in dup and "zoo-broken" in dup and "zoo_fcn:PLUGIN" in dup
    assert all("reinstall" in e or "uninstall" in e for e in errors.values())
    # the real fcn still wins, and everything else works
    assert plugins.get_architecture("fcn").summary == "FCN on HRNet-W18"
    with pytest.raises(PluginError, match="plugin 'raises' failed to load: RuntimeError: plugin exploded"):
        plugins.get_architecture("raises")

    proc = run_zoo("plugins", check=True)
    assert "BROKEN" in proc.stdout and "plugin exploded at load" in proc.stdout
    as_json = json.loads(run_zoo("plugins", "--json", check=True).stdout)
    broken = [p for p in as_json if not p["loaded"]]
    assert {p["name"] for p in broken} == {"importfail", "raises", "notspec", "fcn"}
    assert all(p["error"] and p["distribution"] == "zoo-broken" for p in broken)
    assert "fcn" in run_zoo("list", check=True).stdout
    assert run_zoo("info", "bisenet", check=True).returncode == 0


def test_zoo_plugins_env_restricts_loading(monkeypatch, broken_plugins):
    monkeypatch.setenv("ZOO_PLUGINS", "fcn,bisenet")
    found = plugins.discover()
    assert {p.name for p in found} == {"fcn", "bisenet"}
    # only the allowed names load; the impostor fcn is still a duplicate, the other broken ones are not even imported
    assert [p.value for p in found if p.error] == ["zoo_dupfcn:PLUGIN"]
    assert set(registry.load()) == {"fcn", "bisenet"}
    with pytest.raises(PluginError, match="excluded by ZOO_PLUGINS"):
        plugins.get_architecture("danet")
    proc = run_zoo("list", "--json", check=True)
    assert [m["name"] for m in json.loads(proc.stdout)] == ["bisenet", "fcn"]


def test_third_party_plugin_package(monkeypatch):
    monkeypatch.syspath_prepend(str(UNET_DIST))
    unet = {p.name: p for p in plugins.discover()}["unet"]
    assert (unet.distribution, unet.version, unet.error) == ("zoo-unet", "0.1.0", None)
    arch = unet.architecture
    assert arch.labels == ("background", "road", "vehicle", "sky")
    assert arch.colors()[:4] == ((0, 0, 0), (128, 64, 128), (0, 0, 142), (70, 130, 180))
    entry = registry.get("unet-tiny")
    assert entry.architecture == "unet" and entry.source.endswith("zoo_unet/registry.toml")

    env = {"PYTHONPATH": os.pathsep.join([str(UNET_DIST), os.environ.get("PYTHONPATH", "")])}
    listed = json.loads(run_zoo("plugins", "--json", env=env, check=True).stdout)
    assert {"name": "unet", "distribution": "zoo-unet", "version": "0.1.0"}.items() <= next(
        p for p in listed if p["name"] == "unet"
    ).items()
    models = json.loads(run_zoo("list", "--json", env=env, check=True).stdout)
    assert "unet-tiny" in [m["name"] for m in models]


def test_builder_import_failure_is_a_plugin_error():
    arch = Architecture(name="ghost", summary="", builder="zoo_nowhere.network:build")
    with pytest.raises(PluginError, match="cannot import builder zoo_nowhere.network:build"):
        plugins.load_builder(arch)
    with pytest.raises(PluginError, match="has no network builder"):
        plugins.load_builder(Architecture(name="nobuild", summary=""))


def test_plugins_load_on_first_use_and_nothing_they_raise_escapes(tmp_path, monkeypatch):
    """The one registry mechanism (zoo.registry.entrypoints): asking for one plugin imports that one only; a plugin
    that exits or raises KeyboardInterrupt while imported is a broken record, not the end of zoo."""
    import sys

    root = fake_dist(tmp_path / "site", "zoo-rude", {"exits": "zoo_exits:PLUGIN", "interrupts": "zoo_interrupts:PLUGIN"},
                     {"zoo_exits": "raise SystemExit(3)\n", "zoo_interrupts": "raise KeyboardInterrupt\n"})  # fmt: skip
    monkeypatch.syspath_prepend(str(root))
    assert plugins.get_architecture("fcn").name == "fcn"
    assert "zoo_exits" not in sys.modules and "zoo_interrupts" not in sys.modules  # never imported for fcn
    found = {p.name: p for p in plugins.discover()}
    assert found["exits"].error.startswith("SystemExit: 3") and "reinstall or upgrade zoo-rude" in found["exits"].error
    assert found["interrupts"].error.startswith("KeyboardInterrupt")
    with pytest.raises(PluginError, match="plugin 'exits' failed to load: SystemExit"):
        plugins.get_architecture("exits")
