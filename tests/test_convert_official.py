"""`exiflang convert-official`: a checkpoint with the official layout and shapes (random weights) converts into a
model whose forward pass equals an independent re-statement of the official one; hostile or foreign files are
refused without running anything."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from exiflang.cli import main as cli_main
from exiflang.models.convert_official import (
    UNUSED_KEYS,
    OfficialCheckpointError,
    convert_weights,
    read_official_checkpoint,
    split_official_state,
)
from official_layout import build_reference, save_like_official

TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def reference():
    """The official-style module tree with random weights and BN statistics (eval mode)."""
    return build_reference(seed=0)


@pytest.fixture(scope="module")
def official_file(reference, tmp_path_factory) -> Path:
    """The reference saved exactly as the official training script saves its checkpoint."""
    path = tmp_path_factory.mktemp("official") / "wrapper_75_new.pth"
    save_like_official(reference, path, epoch=74)
    return path


@pytest.fixture(scope="module")
def converted(official_file, tmp_path_factory) -> tuple[Path, Path]:
    """(output folder for the conversion, the official-layout checkpoint)."""
    return tmp_path_factory.mktemp("converted") / "official", official_file


@pytest.fixture(scope="module")
def converted_model(converted):
    """`exiflang convert-official` run once, as a user would, then `exiflang.load_model` on its output."""
    import exiflang

    out, source = converted
    assert cli_main(["convert-official", str(source), "--out", str(out)]) == 0
    return exiflang.load_model(out)


def _tokens(batch: int = 3, length: int = 24, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids framed by [CLS]/[SEP] with ragged padding (row i keeps length - 5*i tokens)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for i in range(batch):
        keep = length - 5 * i
        ids[i, 0], ids[i, keep - 1] = 101, 102
        ids[i, keep:], mask[i, keep:] = 0, 0
    return ids, mask


def test_encode_image_equals_official_visual(converted_model, reference):
    """encode_image(x) == official visual((x - mean) / std) for x in [0, 1], at patch size and at another size."""
    torch.manual_seed(2)
    for shape in ((2, 3, 128, 128), (1, 3, 96, 160)):
        x = torch.rand(shape)
        with torch.no_grad():
            ours = converted_model.encode_image(x)
            theirs = reference.encode_image(x)
        assert ours.shape == (shape[0], 768)
        assert theirs.abs().max() > 1e-2  # the comparison is not between two near-zero outputs
        torch.testing.assert_close(ours, theirs, **TOL)


def test_encode_tokens_equals_official_masked_mean(converted_model, reference):
    """encode_tokens(ids, mask) == the official masked mean of DistilBERT's last hidden state (768-d, raw)."""
    ids, mask = _tokens()
    with torch.no_grad():
        ours = converted_model.encode_tokens(ids, mask)
        theirs = reference.encode_tokens(ids, mask)
    assert ours.shape == (3, 768)
    torch.testing.assert_close(ours, theirs, **TOL)
    # Unnormalised, as the official model returns it.
    assert not torch.allclose(ours.norm(dim=1), torch.ones(3), atol=1e-3)


def test_padding_does_not_change_text_embedding(converted_model):
    """Masked mean: the same text padded to a longer length embeds identically (the official code pads to 512)."""
    ids, mask = _tokens(batch=1, length=20)
    pad = torch.zeros(1, 30, dtype=ids.dtype)
    with torch.no_grad():
        short = converted_model.encode_tokens(ids, mask)
        long = converted_model.encode_tokens(torch.cat([ids, pad], 1), torch.cat([mask, pad], 1))
    torch.testing.assert_close(short, long, **TOL)


def test_converted_config_and_logit_scale(converted_model, converted):
    """The folder records the paper architecture, the fixed logit scale 100 and what was dropped."""
    out, _ = converted
    config = converted_model.config.to_dict()
    assert config["name"] == "paper" and config["embed_dim"] == 768 and config["patch_size"] == 128
    assert converted_model.patch_size == 128 and converted_model.embed_dim == 768
    assert float(converted_model.logit_scale) == pytest.approx(100.0, rel=1e-5)
    provenance = config["converted_from"]
    assert provenance["epoch"] == 74 and provenance["file"] == "wrapper_75_new.pth"
    assert sorted(provenance["dropped"]) == sorted(UNUSED_KEYS)
    assert provenance["missing"] == [] and provenance["unexpected"] == []
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json"}


def test_cli_refuses_to_overwrite_without_force(converted_model, converted, capsys):
    """A second conversion into the same folder is refused (exit 2) unless --force."""
    out, source = converted
    assert cli_main(["convert-official", str(source), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_split_reports_dropped_and_unexpected(reference):
    """Leftovers are dropped by name, foreign keys are reported as unexpected, both towers are kept whole."""
    state = dict(reference.state_dict())
    state["model.extra_head.weight"] = torch.zeros(3)
    state["model.transformer.embeddings.position_ids"] = torch.arange(512)[None]
    parts = split_official_state(state, "x.pth", epoch=3)
    assert parts.unexpected == ["model.extra_head.weight"]
    assert set(parts.dropped) == set(UNUSED_KEYS) | {"model.transformer.embeddings.position_ids"}
    assert len(parts.visual) == 320 and "fc.weight" in parts.visual and parts.visual["fc.weight"].shape == (768, 2048)
    assert len(parts.text) == 100 and "embeddings.word_embeddings.weight" in parts.text
    assert parts.logit_scale == pytest.approx(100.0)


def test_missing_weights_refused_then_allowed(reference, tmp_path):
    """A checkpoint lacking a weight is refused with its name; --allow-missing writes it and lists the hole."""
    state = {k: v for k, v in reference.state_dict().items() if k != "model.visual.layer4.2.bn3.running_var"}
    state["model.extra"] = torch.zeros(1)
    parts = split_official_state(state, tmp_path / "partial.pth")
    with pytest.raises(OfficialCheckpointError, match="layer4.2.bn3.running_var"):
        convert_weights(parts, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    report = convert_weights(parts, tmp_path / "allowed", allow_missing=True)
    assert report.missing == ["model.visual.layer4.2.bn3.running_var"]
    assert report.unexpected == ["model.extra"]
    assert (tmp_path / "allowed" / "model.safetensors").is_file()


def test_wrong_shapes_refused(reference, tmp_path):
    """A different architecture under the official names (e.g. a 512-d projection) is refused, naming the tensor."""
    state = dict(reference.state_dict())
    state["model.visual.fc.weight"] = torch.zeros(512, 2048)
    with pytest.raises(OfficialCheckpointError, match=r"fc\.weight.*\(512, 2048\).*\(768, 2048\)"):
        convert_weights(split_official_state(state, "other.pth"), tmp_path / "out")


class _Payload:
    """A pickle payload that creates a directory when unpickled: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _write_payload(path: Path, payload: dict, writer: str) -> None:
    """Write `payload` with torch.save (zip format) or a bare pickle of the given protocol."""
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=int(writer.rsplit("-", 1)[1]))


@pytest.mark.parametrize("writer", ["torch.save", "pickle-2", "pickle-4"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer, capsys):
    """A .pth whose pickle would call os.mkdir is refused by the weights-only loader; nothing is executed."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"epoch": 1, "model": {"model.visual.conv1.weight": _Payload(marker)}, "optimizer": {}, "lr_sched": {}}
    _write_payload(path, payload, writer)
    with pytest.raises(OfficialCheckpointError) as info:
        read_official_checkpoint(path)
    assert str(path) in str(info.value)
    assert "refused" in str(info.value) and "mkdir" in str(info.value)  # protocol 4 too (issue 14)
    assert cli_main(["convert-official", str(path), "--out", str(tmp_path / "out")]) == 2
    assert str(path) in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ({"state_dict": {"conv1.weight": torch.zeros(1)}}, "not the official EXIF-as-language checkpoint"),
        ({"model": {"conv1.weight": torch.zeros(1)}}, "lacks"),
        ([torch.zeros(2)], "found a list"),
        (b"this is not a checkpoint", "not a PyTorch checkpoint"),
        (b"", "empty"),
    ],
)
def test_foreign_files_are_refused_clearly(tmp_path, content, message):
    """Files that are not the official layout fail with one exception type that names the file and the cause."""
    path = tmp_path / "other.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(OfficialCheckpointError, match=message) as info:
        read_official_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_command_error(tmp_path, capsys):
    """A path that does not exist: exit status 2 and a message naming it."""
    missing = tmp_path / "nope.pth"
    assert cli_main(["convert-official", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err


def test_dataparallel_prefix_is_accepted(reference, tmp_path):
    """A state dict saved from a DataParallel wrapper ("module." on every key) reads like the plain one."""
    small = {k: v for k, v in reference.state_dict().items() if not k.startswith("model.transformer.transformer.")}
    torch.save({"epoch": 0, "model": {"module." + k: v for k, v in small.items()}}, tmp_path / "dp.pth")
    parts = read_official_checkpoint(tmp_path / "dp.pth")
    assert len(parts.visual) == 320 and parts.unexpected == [] and parts.epoch == 0


def test_converted_model_works_with_commands(converted_model, converted, casia_dir, photos_dir, tmp_path, capsys):
    """The converted folder is accepted by `detect` (image tower) and `predict-exif` (both towers)."""
    import json

    out, _ = converted
    image = sorted((casia_dir / "tampered").glob("*.jpg"))[0]
    assert cli_main(["detect", str(image), "--model", str(out), "--per-side", "3", "--out", str(tmp_path),
                     "--method", "exiflang"]) == 0
    report = json.loads((tmp_path / f"{image.stem}.json").read_text())
    assert report["model_id"] == converted_model.model_id
    photo = sorted(photos_dir.rglob("*.jpg"))[0]
    candidates = tmp_path / "candidates.txt"
    candidates.write_text("Make: Canon, Model: Canon EOS 40D\nMake: NIKON CORPORATION, Model: NIKON D3200\n")
    capsys.readouterr()
    assert cli_main(["predict-exif", str(photo), "--model", str(out), "--patches", "2",
                     "--candidates", str(candidates)]) == 0
    printed = capsys.readouterr().out
    assert converted_model.model_id in printed and "NIKON D3200" in printed
