"""Registry parsing, merging, and every kind of bad registry file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.discovered import BUILTIN_ARCHITECTURES
from zoo import config
from zoo.registry import entries as registry
from zoo.errors import RegistryError, UnknownModelError

GOOD = """
[models.mine]
architecture = "fcn"
summary = "my fcn"
num_classes = 19
[models.mine.inference]
urls = ["http://127.0.0.1:1/mine.tar"]
sha256 = "sha256:{}"
size = 123
""".format("ab" * 32)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RegistryError) as info:
        registry.parse_file(path, {"fcn", "bisenet"})
    return info.value.problems


def test_packaged_registry_has_the_five_release_2_4_models():
    entries, _ = registry.parse_file(registry.PACKAGED, set(BUILTIN_ARCHITECTURES))
    models = {e.name: e for e in entries}
    assert set(models) <= set(registry.load())
    expected = {
        "bisenet": ("bisenet_cityscapes_1024x1024_160k", 73.19),
        "danet": ("danet_resnet50_os8_cityscapes_1024x512_80k", 80.27),
        "deeplabv3": ("deeplabv3_resnet50_os8_cityscapes_1024x512_80k", 79.90),
        "deeplabv3p": ("deeplabv3p_resnet50_os8_cityscapes_1024x512_80k", 80.36),
        "fcn": ("fcn_hrnetw18_cityscapes_1024x512_80k", 78.97),
    }
    assert set(models) == set(expected)
    for name, (cfg, miou) in expected.items():
        entry = models[name]
        assert (entry.architecture, entry.config, entry.miou, entry.num_classes) == (name, cfg, miou, 19)
        assert entry.artifacts["weights"].urls == (
            f"https://bj.bcebos.com/paddleseg/dygraph/cityscapes/{cfg}/model.pdparams",
        )
        # no checksum was ever published: none may be invented
        assert all(a.sha256 is None for a in entry.artifacts.values())
    # Only URLs that PaddlePaddle documents (read in Paddle2ONNX's and PaddleSeg's public history; issue 11):
    p2o = "https://bj.bcebos.com/paddle2onnx/model_zoo/"
    documented = {
        "bisenet": {
            "inference": ("https://paddleocr.bj.bcebos.com/paddle2onnx/models/pdmodel/bisenet.tar", p2o + "bisenet.tar.gz"),
            "onnx": ("https://paddleocr.bj.bcebos.com/paddle2onnx/models/onnx/bisenet.tar", p2o + "bisenet.onnx"),
        },
        "danet": {"inference": (p2o + "danet.tar.gz",), "onnx": (p2o + "danet.onnx",)},
        "deeplabv3": {"inference": (p2o + "deeplabv3.tar.gz",), "onnx": (p2o + "deeplabv3.onnx",)},
        "deeplabv3p": {},  # trained weights only
        "fcn": {
            "inference": (
                "https://bj.bcebos.com/paddlehub/fastdeploy/FCN_HRNet_W18_cityscapes_with_argmax_infer.tgz",
                "https://paddleseg.bj.bcebos.com/tipc/infer_models/fcn_hrnetw18_cityscapes_1024x512_80k.zip",
            ),
        },
    }
    for name, kinds in documented.items():
        artifacts = models[name].artifacts
        assert {k: a.urls for k, a in artifacts.items() if k != "weights"} == kinds
        for artifact in artifacts.values():  # and each says where it is documented
            assert len(artifact.docs) == len(artifact.urls)
            assert all(d.startswith("https://github.com/PaddlePaddle/") for d in artifact.docs)


def test_docs_are_shown_per_url_in_info_json():
    proc = run_zoo("info", "fcn", "--json", check=True)
    sources = json.loads(proc.stdout)["artifacts"]["inference"]["sources"]
    assert [s["url"].rsplit(".", 1)[-1] for s in sources] == ["tgz", "zip"]
    assert "deploy/fastdeploy/semantic_segmentation/cpu-gpu/README.md" in sources[0]["docs"]
    assert sources[1]["docs"].endswith("test_tipc/prepare.sh")


def test_registry_without_docs_still_parses_and_shows_none(tmp_path):
    entries, _ = registry.parse_file(write(tmp_path / "r.toml", GOOD), {"fcn"})
    assert entries[0].as_dict()["artifacts"]["inference"]["sources"] == [
        {"url": "http://127.0.0.1:1/mine.tar", "docs": None}
    ]


def test_entries_are_frozen(tmp_path):
    entries, _ = registry.parse_file(write(tmp_path / "r.toml", GOOD), {"fcn"})
    with pytest.raises(AttributeError):
        entries[0].name = "other"  # type: ignore[misc]
    art = entries[0].artifacts["inference"]
    assert (art.sha256, art.size, art.urls) == ("sha256:" + "ab" * 32, 123, ("http://127.0.0.1:1/mine.tar",))


def test_syntax_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "bad.toml", '[models.x]\narchitecture = "fcn"\nsummary = "unterminated\n')
    (problem,) = problems_of(path)
    assert str(path) in problem and "TOML syntax error" in problem and "line 3" in problem and "column" in problem


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('summary = "no arch"\n[models.x.weights]\nurls = ["u"]', "[models.x]: missing required key 'architecture'"),
        ('architecture = "fcn"\nnum_classes = "19"\n[models.x.weights]\nurls = ["u"]', "key 'num_classes' must be an integer"),
        ('architecture = "fcn"\nmiou = true\n[models.x.weights]\nurls = ["u"]', "key 'miou' must be a number"),
        ('architecture = "fcn"\ntrain_size = [1024]\n[models.x.weights]\nurls = ["u"]', "key 'train_size' must be [W, H]"),
        ('architecture = "fcn"\n[models.x.weights]\nurls = ["u"]\nsha256 = "md5:abc"', "[models.x].weights: key 'sha256' must look like"),
        ('architecture = "fcn"\n[models.x.weights]\nurls = ["u"]\nsha256 = "sha256:ABC"', "key 'sha256' must look like"),
        ('architecture = "fcn"\n[models.x.weights]\nurls = "u"', "key 'urls' must be a non-empty list"),
        ('architecture = "fcn"\n[models.x.weights]\nsize = 3', "[models.x].weights: missing required key 'urls'"),
        ('architecture = "fcn"\n[models.x.weights]\nurls = ["u"]\nsize = -1', "key 'size' must be a positive integer"),
        ('architecture = "fcn"', "needs at least one artifact table"),
        ('architecture = "fcn"\n[models.x.weights]\nurls = ["u", "v"]\ndocs = ["d"]', "key 'docs' has 1 entries for 2 urls"),
        ('architecture = "fcn"\n[models.x.weights]\nurls = ["u"]\ndocs = "d"', "key 'docs' must be a list of strings"),
        ('architecture = "fcn"\nsumary = "typo"\n[models.x.weights]\nurls = ["u"]', "unknown key 'sumary'"),
        ('architecture = "nosuch"\n[models.x.weights]\nurls = ["u"]', "no installed plugin provides 'nosuch'"),
    ],
)
def test_each_bad_entry_names_file_entry_and_key(tmp_path, body, expected):
    path = write(tmp_path / "bad.toml", "[models.x]\n" + body + "\n")
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert str(path) in problems[0] and "[models.x]" in problems[0] and expected in problems[0]


def test_every_problem_is_listed_at_once(tmp_path):
    text = (
        '[models.a]\nsummary = 1\n[models.a.weights]\nurls = ["u"]\n'
        '[models.b]\narchitecture = "fcn"\n[models.b.weights]\nurls = ["u"]\nsha256 = "nope"\n'
    )
    problems = problems_of(write(tmp_path / "bad.toml", text))
    joined = "\n".join(problems)
    assert len(problems) == 3
    assert "[models.a]: missing required key 'architecture'" in joined
    assert "[models.a]: key 'summary' must be a string" in joined
    assert "[models.b].weights: key 'sha256'" in joined
    assert "3 registry problems" in str(RegistryError(problems))


def test_merge_order_user_then_env_then_cli(tmp_path, monkeypatch, zoo_home):
    write(config.user_registry(), GOOD)
    a = write(tmp_path / "a.toml", GOOD.replace("mine", "from-env-a"))
    b = write(tmp_path / "b.toml", GOOD.replace("mine", "from-env-b"))
    cli = write(tmp_path / "c.toml", GOOD.replace("mine", "from-cli"))
    monkeypatch.setenv("ZOO_REGISTRY", os.pathsep.join([str(a), str(b)]))
    models = registry.load([cli])
    assert {"mine", "from-env-a", "from-env-b", "from-cli", "fcn"} <= set(models)
    assert models["mine"].source == str(config.user_registry())
    assert models["from-cli"].source == str(cli)
    assert list(registry.registry_paths([cli]))[:5] == [registry.PACKAGED, config.user_registry(), a, b, cli]


def test_duplicate_name_is_an_error_naming_both_files(tmp_path, monkeypatch):
    first = write(tmp_path / "first.toml", GOOD)
    second = write(tmp_path / "second.toml", GOOD.replace('summary = "my fcn"', 'summary = "again"'))
    monkeypatch.setenv("ZOO_REGISTRY", os.pathsep.join([str(first), str(second)]))
    with pytest.raises(RegistryError) as info:
        registry.load()
    message = str(info.value)
    assert str(first) in message and str(second) in message and "override = true" in message


def test_duplicate_of_a_packaged_model_is_an_error_unless_override(tmp_path, monkeypatch):
    text = '[models.fcn]\narchitecture = "fcn"\nsummary = "mine"\n[models.fcn.weights]\nurls = ["file:///w.pdparams"]\n'
    path = write(tmp_path / "r.toml", text)
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    with pytest.raises(RegistryError, match="already defined in"):
        registry.load()
    write(path, text.replace('summary = "mine"', 'summary = "mine"\noverride = true'))
    assert registry.get("fcn").summary == "mine"
    assert registry.get("fcn").artifacts["weights"].urls == ("file:///w.pdparams",)


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as info:
        registry.get("deeplab3")
    assert isinstance(info.value, KeyError)
    assert "did you mean 'deeplabv3'" in str(info.value) and "zoo list" in str(info.value)


def test_cli_bad_registry_is_one_line_without_traceback(tmp_path):
    bad = write(tmp_path / "bad.toml", "[models.x\n")
    proc = run_zoo("list", env={"ZOO_REGISTRY": str(bad)})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:") and str(bad) in lines[0]
    assert "Traceback" not in proc.stderr
    debug = run_zoo("list", env={"ZOO_REGISTRY": str(bad), "ZOO_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_cli_registry_option(tmp_path):
    path = write(tmp_path / "r.toml", GOOD)
    proc = run_zoo("--registry", str(path), "info", "mine", "--json", check=True)
    assert '"name": "mine"' in proc.stdout
    other = write(tmp_path / "o.toml", GOOD.replace("models.mine", "models.other"))
    proc = run_zoo(f"--registry={path}", "--registry", str(other), "list", "--json", check=True)
    names = {m["name"] for m in json.loads(proc.stdout)}
    assert {"mine", "other", "fcn"} <= names


@pytest.mark.parametrize("argv", [["--registry"], ["--registry", "--json"], ["--registry=", "list"]])
def test_cli_registry_option_without_a_file_is_a_usage_error(argv):
    proc = run_zoo(*argv)
    assert proc.returncode == 2 and "--registry needs a FILE" in proc.stderr and "Traceback" not in proc.stderr
