"""`exiflang exif` prints exactly the text the model reads (issue 22, item 4), on a real CASIA splice."""
from __future__ import annotations

import json

from exiflang.cli import main

SPLICE = "tampered/Sp_D_CND_A_sec0056_sec0015_0282.jpg"  # its EXIF says Software: Adobe Photoshop CS2 Windows


def test_exif_prints_the_builtin_models_text_whole(casia_dir, capsys):
    from exiflang.exif import ExifReader, TextConfig, exif_to_text
    from exiflang.models.factory import read_config

    assert main(["exif", str(casia_dir / SPLICE)]) == 0
    out, err = capsys.readouterr()
    assert "Software: Adobe Photoshop CS2 Windows" in out
    config = read_config("default")
    assert config.model_id in err and "40 characters" in err
    with ExifReader() as reader:  # the very text the default model's training and check-exif render
        assert out.strip() == exif_to_text(reader.read(casia_dir / SPLICE), TextConfig.from_dict(config.text_format))


def test_one_option_changes_one_setting_of_the_models_format(casia_dir, capsys):
    assert main(["exif", "--max-value-chars", "20", str(casia_dir / SPLICE)]) == 0
    out, err = capsys.readouterr()
    assert "Software: Unknown" in out and "with the options above" in err
    assert main(["exif", "--json", str(casia_dir / SPLICE)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"].startswith("grid-") and "Adobe Photoshop CS2 Windows" in record["text"]


def test_exif_with_a_missing_model_is_one_line(casia_dir, capsys, tmp_path):
    assert main(["exif", "--model", str(tmp_path / "none"), str(casia_dir / SPLICE)]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_camera_name_does_not_repeat_the_make():
    from exiflang.exif import camera_name

    assert camera_name("Canon", "Canon PowerShot S400") == "Canon PowerShot S400"
    assert camera_name("NIKON CORPORATION", "NIKON D50") == "NIKON D50"
    assert camera_name("Apple", "iPhone 13") == "Apple iPhone 13"
    assert camera_name(None, "X100") == "X100" and camera_name("Sony", "") == "Sony" and camera_name("", None) == "?"
