"""Issue 24: the radial-distortion protocol (exact warp, known tile positions) and `exiflang calibrate`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import run_cli
from exiflang.probes.distortion import distort, source_coordinates

# Strong lensfun-range k1: about lensfun's 2 % (barrel) and 98 % (pincushion) quantiles.
STRONG_BARREL, STRONG_PINCUSHION = -0.07, 0.06


def _forward_radius(r_u: float, k1: float, r_corner: float, r_edge: float) -> float:
    """Where the Brown-Conrady formula puts a source radius in the output (written out here, k2 = 0).

    The output is zoomed so that it samples only inside the source: barrel pins the corner pixels (radius
    r_corner), pincushion the pixels at the midpoints of the long sides (radius r_edge, just under 1)."""
    pinned = r_corner if k1 < 0 else r_edge
    return r_u * (1 + k1 * r_u ** 2) / (1 + k1 * pinned ** 2)


@pytest.mark.parametrize("k1", [-0.08, 0.08])
def test_warp_moves_a_known_point_where_the_formula_says(k1):
    h, w = 240, 320
    half, cy, cx = 120.0, (h - 1) / 2, (w - 1) / 2
    r_corner = np.hypot(cy, cx) / half
    image = np.zeros((h, w, 3), np.uint8)
    sy, sx = 80, 110  # a bright 1-px dot at mid radius, where both signs move it by several pixels
    image[sy, sx] = 255
    out = distort(image, k1)
    r_u = np.hypot(sy - cy, sx - cx) / half
    scale = _forward_radius(r_u, k1, r_corner, (h - 1) / 2 / half) / r_u
    want_y, want_x = cy + (sy - cy) * scale, cx + (sx - cx) * scale
    assert np.hypot(want_y - sy, want_x - sx) > 3  # the point really moves
    got_y, got_x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert abs(got_y - want_y) <= 0.75 and abs(got_x - want_x) <= 0.75  # the nearest output pixel to the formula's


@pytest.mark.parametrize("k1", [-0.08, 0.05])
def test_inverse_mapping_used_for_resampling_is_exact(k1):
    h, w = 240, 320
    src_y, src_x = source_coordinates(h, w, k1)
    half, cy, cx = 120.0, (h - 1) / 2, (w - 1) / 2
    r_corner = np.hypot(cy, cx) / half
    rho = np.hypot(np.arange(h)[:, None] - cy, np.arange(w)[None, :] - cx) / half
    r_u = np.hypot(src_y - cy, src_x - cx) / half
    # every output pixel shows the source point that the forward formula maps onto it (< 1e-3 px)
    assert np.max(np.abs(_forward_radius(r_u, k1, r_corner, (h - 1) / 2 / half) - rho)) * half < 1e-3
    # and along the same ray from the centre: radial distortion never turns a point
    assert np.max(np.abs((src_y - cy) * (np.arange(w)[None, :] - cx) - (src_x - cx) * (np.arange(h)[:, None] - cy))) < 1e-6
    # no output pixel samples outside the source frame (no replicated border), and the pinned points stay put
    assert src_y.min() >= -1e-3 and src_x.min() >= -1e-3 and src_y.max() <= h - 1 + 1e-3 and src_x.max() <= w - 1 + 1e-3
    assert (abs(src_y[0, 0]) < 1e-3) == (k1 < 0) and (abs(src_y[0, w // 2] - 0) < 0.6) == (k1 > 0)
    # bilinear resampling of a linear ramp is exact: the output value is the source x (up to uint8 rounding)
    ramp = np.broadcast_to((np.arange(w) * 255 / (w - 1)).round().astype(np.uint8)[None, :, None], (h, w, 3))
    out = distort(np.ascontiguousarray(ramp), k1).astype(np.float64)[..., 0]
    assert np.max(np.abs(out - src_x * 255 / (w - 1))) <= 1.0


def test_tiles_are_the_documented_positions_and_are_what_the_model_sees():
    from exiflang.probes.radial import RING_EDGES, embed_frame, outward_flips, ring_index, tile_positions, tile_radii

    pos = tile_positions(768, 1024, 128)
    assert len(pos) == 48 and np.all(pos % 8 == 0)  # whole frame tiled, on the JPEG block grid
    assert set(pos[:, 0]) == set(range(0, 768, 128)) and set(pos[:, 1]) == set(range(0, 1024, 128))
    radii = tile_radii(768, 1024, pos, 128)
    assert radii.min() == pytest.approx(np.hypot(64, 64) / 384) and radii.max() == pytest.approx(np.hypot(448, 320) / 384)
    assert np.bincount(ring_index(radii, RING_EDGES)).tolist() == [4, 8, 4, 8, 8, 8, 4, 4]  # one ring per radius

    class Recorder:  # stands in for a model: keeps what it was asked to embed
        patch_size = 128
        seen = []

        def encode_image(self, x):
            self.seen.append(x.numpy().copy())
            return x.mean(dim=(2, 3))

    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    rec = Recorder()
    _, got_radii = embed_frame(rec, image)
    tiles = np.concatenate(rec.seen)
    up, left = outward_flips(768, 1024, pos, 128)
    for i, (t, l) in enumerate(pos):
        want = image[t:t + 128, l:l + 128].transpose(2, 0, 1) / 255.0
        want = want[:, ::-1] if up[i] else want
        want = want[:, :, ::-1] if left[i] else want
        assert np.allclose(tiles[i], want, atol=1e-6)
    assert np.allclose(got_radii, radii)


def test_shipped_probe_names_the_default_model_and_the_layout_in_use():
    from exiflang.models.factory import resolve_weights_dir
    from exiflang.probes.calibrator import load_calibrator
    from exiflang.probes.radial import LAYOUT, RING_EDGES

    cal = load_calibrator(resolve_weights_dir("default"))
    config = json.loads((resolve_weights_dir("default") / "config.json").read_text())
    assert cal.model_id == config["model_id"]
    assert cal.meta["layout"] == LAYOUT and cal.meta["ring_edges"] == list(RING_EDGES) and cal.meta["patch"] == 128
    # lensfun's 5 % quantile of k1 (-0.0446) is inside barrel (k1 < edge 0), its 95 % (0.0357) inside pincushion
    assert -0.0446 < cal.meta["band_edges"][0] < 0 < cal.meta["band_edges"][1] < 0.0357
    from exiflang.probes.distortion import distortion_bins

    assert np.allclose(cal.meta["bin_edges"], distortion_bins(5).edges)  # the bins the probe was fitted on
    assert cal.tensors["cls_w"].shape == (8 * 256, 5)


@pytest.fixture(scope="module")
def heldout_photo(photos_dir):
    """A shared photo of a camera the default model never trained on (Canon PowerShot G2, 1024x768)."""
    found = sorted((photos_dir / "Canon_Canon-PowerShot-G2").glob("*.jpg"))
    if not found:
        pytest.skip("no Canon PowerShot G2 photo in the shared photos")
    return found[0]


def _distorted_copy(src, dst, k1: float):
    """The photo warped by a known k1 (k2 = 0), saved lossless (PNG) so nothing but the warp changes it."""
    from PIL import Image

    from exiflang.imageio import as_rgb_array

    Image.fromarray(distort(as_rgb_array(src), k1)).save(dst)
    return dst


def test_calibrate_puts_strong_known_distortion_in_its_band(heldout_photo, tmp_path, capsys):
    barrel = _distorted_copy(heldout_photo, tmp_path / "barrel.png", STRONG_BARREL)
    pincushion = _distorted_copy(heldout_photo, tmp_path / "pincushion.png", STRONG_PINCUSHION)
    plain = tmp_path / "plain.png"  # the same frame, never resampled
    from PIL import Image

    from exiflang.imageio import as_rgb_array

    Image.fromarray(as_rgb_array(heldout_photo)).save(plain)
    code, out, err = run_cli(capsys, ["calibrate", str(barrel), str(pincushion), str(plain), "--json"])
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(barrel), str(pincushion), str(plain)]
    assert [r["band"] for r in rows] == ["barrel", "pincushion", "none"]
    assert rows[0]["k1"] < -0.0146  # the barrel estimate is inside its band, with a real uncertainty
    assert rows[2]["k1_std"] < rows[0]["k1_std"]  # no warp: a confident "none"
    for r in rows:
        assert set(r) >= {"path", "k1", "k1_std", "band", "bin_probabilities", "model_id"}
        assert r["k1_std"] > 0 and abs(sum(r["bin_probabilities"]) - 1) < 1e-3 and r["n_tiles"] == 48
        assert r["caveat"] is None  # 1024x768: the size the probe was measured on


def test_calibrate_bad_inputs_get_one_line_each(heldout_photo, tmp_path, capsys):
    from PIL import Image

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg at all")
    small = tmp_path / "small.png"
    Image.new("RGB", (200, 150), (90, 90, 90)).save(small)
    code, out, err = run_cli(capsys, ["calibrate", str(junk), str(small), str(heldout_photo)])
    assert code == 1  # the good photo still gets its line
    lines = err.strip().splitlines()
    assert len(lines) == 2 and str(junk) in lines[0] and str(small) in lines[1] and "too small" in lines[1]
    assert out.count("\n") == 1 and str(heldout_photo) in out and "k1 = " in out


def test_calibrate_refuses_a_probe_of_another_model(heldout_photo, tmp_path, capsys):
    from exiflang.models import create_model, save_model
    from exiflang.models.factory import resolve_weights_dir

    other = tmp_path / "tiny"
    save_model(create_model("tiny", seed=0), other)
    code, _, err = run_cli(capsys, ["calibrate", str(heldout_photo), "--model", str(other)])
    assert code == 2 and err.count("\n") == 1 and "no k1 probe" in err
    code, _, err = run_cli(capsys, ["calibrate", str(heldout_photo), "--model", str(other),
                                    "--probe", str(resolve_weights_dir("default"))])
    assert code == 2 and err.count("\n") == 1 and "fitted on model grid-" in err
