"""Issue 20, rows 1, 2, 8 and 15: a model folder (and any JSON a user hands us) is untrusted input.

Each case is a crafted folder or file, refused with one line (exit 2), no traceback, and no side effect: the
pickle payload of row 1 never runs, a hostile `model_id` never writes outside the cache, and the built-in
model's cached text embeddings are never replaced. `HOSTILE_CONFIGS` is the case list that
docs/RESULTS.md counts (`pytest tests/test_hostile_models.py -q`).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exiflang.cli import main
from exiflang.paths import WEIGHTS_DIR

BUILTIN = WEIGHTS_DIR / "default"


class _Payload:
    """Unpickling this creates the file `marker`: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cli(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def _tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.is_dir() else {}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    from exiflang.models import create_model, save_model

    return save_model(create_model("tiny", seed=3), tmp_path_factory.mktemp("tiny") / "model")


def _variant(base: Path, dest: Path, edit=None, config=None) -> Path:
    """A copy of model folder `base` with its config.json edited by `edit(config)` or replaced by `config`."""
    shutil.copytree(base, dest)
    data = json.loads((dest / "config.json").read_text())
    if edit is not None:
        edit(data)
    if config is not None:
        data = config
    (dest / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return dest


def _set(path: str, value):
    """An edit that sets config[path] (dotted) to value."""
    def edit(data):
        keys = path.split(".")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return edit


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# name -> (edit of the tiny model's config.json, or a raw replacement text; words the one line must contain)
HOSTILE_CONFIGS = {
    "backbone loader keywords": (_set("text.backbone_config.subfolder", "/tmp"), "not allowed"),
    "backbone weights_only": (_set("text.backbone_config.weights_only", False), "not allowed"),
    "backbone trust_remote_code": (_set("text.backbone_config.trust_remote_code", True), "not allowed"),
    "model_id absolute path": (_set("model_id", "/tmp/exiflang-evil"), "model_id"),
    "model_id parent dirs": (_set("model_id", "../../evil"), "model_id"),
    "model_id of the built-in model": (_set("model_id", "grid-dbf133e74e04"), "does not match its weights"),
    "name with a slash": (_set("name", "a/../../b"), "name"),
    "width 1e9": (_set("image.widths", [1000000000, 16, 16, 32]), "widths"),
    "float width": (_set("image.widths", [8.5, 16, 16, 32]), "integer"),
    "string width": (_set("image.widths", ["8", 16, 16, 32]), "integer"),
    "patch 0": (_set("patch_size", 0), "patch_size"),
    "patch negative": (_set("patch_size", -64), "patch_size"),
    "embed_dim huge": (_set("embed_dim", 10 ** 12), "embed_dim"),
    "a million blocks": (_set("image.layers", [1000000, 1, 1, 1]), "layers"),
    "too many stages": (_set("image.layers", [1] * 20), "stages"),
    "stem kernel 0": (_set("image.stem_kernel", 0), "stem_kernel"),
    "bool as width": (_set("image.stem_width", True), "integer"),
    "unknown arch": (_set("image.arch", "vit"), "arch"),
    "unknown text kind": (_set("text.kind", "remote"), "kind"),
    "text layers 10^6": (_set("text.backbone_config.num_hidden_layers", 1000000), "num_hidden_layers"),
    "text width product too big": (lambda d: d["text"]["backbone_config"].update(
        hidden_size=4096, num_hidden_layers=48, intermediate_size=16384, num_attention_heads=64), "billion parameters"),
    "max_length huge": (_set("text.max_length", 10 ** 9), "max_length"),
    "NaN logit scale": ('{"embed_dim": 32, "image": {}, "text": {}, "logit_scale": {"init": NaN}}', "NaN"),
    "Infinity embed_dim": ('{"embed_dim": Infinity, "image": {}, "text": {}}', "Infinity"),
    "deeply nested JSON": (_nested(100000), "nested too deeply"),
    "nested inside a key": ('{"embed_dim": 32, "image": {}, "text": {}, "x": ' + _nested(50) + "}", "nested too deeply"),
    "not JSON": ("\x00\x01garbage", "invalid JSON"),
    "a list": ("[1, 2, 3]", "expected a JSON object"),
    "text_format garbage": (_set("text_format", {"order": "rm -rf"}), "text_format"),
    "grid_aligned a string": (_set("grid_aligned", "yes"), "true or false"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CONFIGS))
def test_hostile_config_is_refused_with_one_line(case, tiny_folder, tmp_path, capsys, photos_dir):
    edit, words = HOSTILE_CONFIGS[case]
    folder = _variant(tiny_folder, tmp_path / "m", **({"config": edit} if isinstance(edit, str) else {"edit": edit}))
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    cache = Path(os.environ["EXIFLANG_CACHE"])
    before = _tree_snapshot(cache)
    code, line = _cli(capsys, ["check-exif", str(photo), "--model", str(folder)])
    assert code == 2, (case, line)
    assert words in line and "config.json" in line, (case, line)
    assert _tree_snapshot(cache) == before  # nothing cached under any name
    assert not Path("/tmp/exiflang-evil").exists()


def test_tiny_config_beside_default_weights_is_one_line(tiny_folder, tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(tiny_folder, folder)
    shutil.copy(BUILTIN / "model.safetensors", folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config.pop("model_id")  # without the id check, the shape check must still hold
    (folder / "config.json").write_text(json.dumps(config))
    code, line = _cli(capsys, ["detect", str(BUILTIN.parent / "nonexistent.jpg"), "--model", str(folder)])
    assert code == 2 and "do not match the config" in line, line


def test_default_config_beside_tiny_weights_is_one_line(tiny_folder, tmp_path, capsys, photos_dir):
    folder = tmp_path / "mixed"
    shutil.copytree(BUILTIN, folder)
    shutil.copy(tiny_folder / "model.safetensors", folder / "model.safetensors")
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    code, line = _cli(capsys, ["detect", str(photo), "--model", str(folder), "--no-exif-check"])
    assert code == 2 and "does not match its weights" in line, line


def _pickle_payload_folder(tiny_folder: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Row 1 exactly: backbone_config sends the HF loader to a folder holding a pickled payload."""
    evil_dir, marker = tmp_path / "evil", tmp_path / "PAYLOAD_RAN"
    evil_dir.mkdir()
    torch.save({"x": _Payload(marker)}, evil_dir / "pytorch_model.bin")
    shutil.copy(tiny_folder.parent / "model" / "config.json", evil_dir / "config.json")

    def edit(data):
        data["text"]["kind"] = "minilm"
        data["text"]["backbone_config"] = {"subfolder": str(evil_dir), "use_safetensors": False,
                                           "weights_only": False}
    return _variant(tiny_folder, tmp_path / "model", edit=edit), marker


def test_pickle_payload_never_runs_in_process(tiny_folder, tmp_path, capsys, photos_dir):
    folder, marker = _pickle_payload_folder(tiny_folder, tmp_path)
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    for argv in (["check-exif", str(photo), "--no-cache", "--model", str(folder)],
                 ["detect", str(photo), "--model", str(folder), "--out", str(tmp_path / "out")],
                 ["predict-exif", str(photo), "--model", str(folder)]):
        code, line = _cli(capsys, argv)
        assert code == 2 and "backbone_config" in line and "not allowed" in line, (argv[0], line)
        assert not marker.exists(), f"{argv[0]} unpickled the payload"


def test_pickle_payload_never_runs_through_the_console(tiny_folder, tmp_path, photos_dir):
    folder, marker = _pickle_payload_folder(tiny_folder, tmp_path)
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "exiflang", "check-exif", str(photo), "--no-cache",
                           "--model", str(folder)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "not allowed" in proc.stderr
    assert not marker.exists()


def test_weights_that_are_a_pickle_are_refused(tiny_folder, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    marker = tmp_path / "PAYLOAD_RAN"
    torch.save({"x": _Payload(marker)}, folder / "model.safetensors")
    code, line = _cli(capsys, ["detect", str(BUILTIN.parent / "none.jpg"), "--model", str(folder)])
    assert code == 2 and "cannot read weights" in line and not marker.exists(), line


def test_hostile_tokenizer_is_refused(tiny_folder, tmp_path, capsys, photos_dir):
    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["text"]["tokenizer"] = "trained"
    (folder / "config.json").write_text(json.dumps(config))
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    for content, words in ((None, "tokenizer.json is missing"), (_nested(100000), "nested too deeply"),
                           ('{"model": {"type": "Nonsense"}}', "tokenizer")):
        if content is not None:
            (folder / "tokenizer.json").write_text(content)
        code, line = _cli(capsys, ["check-exif", str(photo), "--no-cache", "--model", str(folder)])
        assert code == 2 and words in line, line


HOSTILE_CALIBRATIONS = {
    "platt a string": {"method": "platt", "params": {"a": "x", "b": 0}},
    "platt infinite": {"method": "platt", "params": {"a": 1e400, "b": 0}},
    "isotonic y outside [0, 1]": {"method": "isotonic", "params": {"x": [0, 1], "y": [0, 7]}},
    "isotonic decreasing": {"method": "isotonic", "params": {"x": [1, 0], "y": [0, 1]}},
    "isotonic not lists": {"method": "isotonic", "params": {"x": "0,1", "y": "0,1"}},
    "verdict of its own": {"bands": [{"verdict": "<script>alert(1)</script>", "low": 0, "high": 1}]},
    "bands a number": {"bands": 3},
    "per_side a string": {"per_side": "30"},
    "unknown method": {"method": "pickle"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CALIBRATIONS))
def test_hostile_calibration_is_refused(case, tmp_path, capsys, photos_dir):
    from exiflang.errors import ExiflangError
    from exiflang.forensics.calibration import for_model
    from exiflang.models import load_model

    folder = tmp_path / "m"
    shutil.copytree(BUILTIN, folder)
    data = json.loads((folder / "calibration.json").read_text())
    data = {**data, **copy.deepcopy(HOSTILE_CALIBRATIONS[case])}
    (folder / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(ExiflangError, match="calibration"):  # at load (bad JSON) or when interpreted
        for_model(load_model(folder, image_only=True))
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    code, line = _cli(capsys, ["detect", str(photo), "--model", str(folder), "--no-exif-check", "--per-side", "4"])
    assert code == 2 and "calibration" in line, line


def test_deeply_nested_candidates_reference_and_config(tmp_path, capsys, photos_dir):
    deep = tmp_path / "deep.json"
    deep.write_text(_nested(100000))
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    for argv in (["predict-exif", str(photo), "--candidates", str(deep)],
                 ["check-exif", str(photo), "--reference", str(deep)],
                 ["train", "--index", str(tmp_path), "--config", str(deep), "--out", str(tmp_path / "run")]):
        code, line = _cli(capsys, argv)
        assert code == 2 and "nested too deeply" in line and str(deep) in line, (argv[0], line)
    assert not (tmp_path / "run").exists()


def test_the_builtin_text_cache_is_not_poisoned(tiny_folder, tmp_path, capsys, photos_dir):
    """Row 2's attack: a folder claiming the built-in id cannot write the built-in model's cache entries."""
    from exiflang.models import load_model
    from exiflang.probes.ranking import text_cache_folder

    builtin_cache = text_cache_folder(load_model("default"))
    before = _tree_snapshot(builtin_cache)
    folder = _variant(tiny_folder, tmp_path / "m", edit=_set("model_id", "grid-dbf133e74e04"))
    photo = next(iter(sorted(photos_dir.rglob("*.jpg"))))
    code, line = _cli(capsys, ["check-exif", str(photo), "--model", str(folder)])
    assert code == 2 and "does not match its weights" in line
    assert _tree_snapshot(builtin_cache) == before


def test_honest_models_still_load(tiny_folder):
    """The checks refuse nothing real: every shipped config builds, and saved folders load with their own id."""
    from exiflang.models import available_configs, load_model
    from exiflang.models.factory import resolve_config

    for name in available_configs():
        resolve_config(name)
    assert load_model("default", image_only=True).model_id == json.loads((BUILTIN / "config.json").read_text())["model_id"]
    assert load_model(tiny_folder).model_id.startswith("tiny-")
