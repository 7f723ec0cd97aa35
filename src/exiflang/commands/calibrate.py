"""`exiflang calibrate PHOTO...`: radial distortion k1 of full-frame photos, from pixels, with its uncertainty."""
from __future__ import annotations

import argparse
import json
import sys

from exiflang.errors import CommandError

DESCRIPTION = """\
Estimate the radial distortion coefficient k1 of each photo (Brown-Conrady, r_d = r_u (1 + k1 r_u^2),
r = 1 at half the shorter side, optical centre at the frame centre; k1 < 0 barrel, k1 > 0 pincushion) with
the built-in model and the k1 probe shipped beside it. The frame is tiled with 128-px tiles, the tiles are
embedded, grouped into rings by radius, and the probe reads the rings (docs/results/probes.md, section 2).

Printed per photo: k1 (the probe's posterior mean), k1_std (its posterior standard deviation) and the most
probable band (the probe's posterior mass per band; it can differ from the band of k1 when the probe sees a
strong warp but doubts its sign: k1 then sits near 0 with a large k1_std). Bands:
  barrel      k1 < -0.0146   (lensfun's 5 % quantile of k1, -0.0446, is inside)
  none        -0.0146 <= k1 < 0.0121
  pincushion  k1 >= 0.0121   (lensfun's 95 % quantile, 0.0357, is inside)
The edges are the outer edges of the 5 equal-frequency lensfun k1 bins (a fifth of lensfun's lenses is in
each of barrel and pincushion).

What it reads, and its accuracy: the probe was fitted on synthetic warps (lensfun coefficients) of 1024x768
camera JPEGs, so it reads the resampling traces a warp leaves in the pixels (the JPEG block grid moved and
blurred, the local zoom), not curved lines in the scene. On cameras the model never trained on it gets the
5 bins right for 0.55 of the frames, the band for 0.71 (0.60 by always answering "none") and k1 only roughly
(RMSE 0.018 against 0.021 by always answering the mean); strong warps (lensfun's 2 % / 98 %) land in their
band well under half the time, often read as strong but of the wrong sign. A photo straight from a camera
that does not correct distortion in-camera was never resampled, so it reads as "none" whatever its lens.
Frames of another size than 1024x768 get a caveat: accuracy not measured there.
"""


def register(subparsers) -> None:
    """Add the `calibrate` sub-command."""
    from .argtypes import add_device_argument, batch_size_int

    p = subparsers.add_parser("calibrate", help="radial distortion k1 of full-frame photos (k1, k1_std, band)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="full-frame photos (not crops: the centre must be "
                                                             "the optical centre)")
    p.add_argument("--json", action="store_true", help="print one JSON object per photo and line (path, k1, "
                                                       "k1_std, band, bin probabilities, ...)")
    p.add_argument("--model", default="default", help="model name or folder (default: the built-in model)")
    p.add_argument("--probe", metavar="DIR", help="folder with k1_probe.json + k1_probe.safetensors (default: the "
                                                  "model's folder); it must belong to --model")
    p.add_argument("--batch-size", type=batch_size_int, default=64,
                   help=f"tiles per forward pass, {batch_size_int.limits} (default 64)")
    add_device_argument(p)
    p.set_defaults(func=run)


def _load(args):
    """(model, calibrator), or CommandError with the one-line reason."""
    from exiflang.models import ModelError, load_model
    from exiflang.models.factory import resolve_weights_dir
    from exiflang.probes.calibrator import CalibratorError, load_calibrator

    try:
        model = load_model(args.model, image_only=True, device=args.device)
        calibrator = load_calibrator(args.probe or resolve_weights_dir(args.model))
        calibrator.check_model(model)
    except (ModelError, CalibratorError) as exc:
        raise CommandError(str(exc)) from exc
    return model, calibrator


def _one(path: str, model, calibrator, args) -> dict:
    """The result of one photo (raises ImageLoadError / RadialError for a bad one)."""
    from exiflang.imageio import as_rgb_array
    from exiflang.probes.calibrator import calibrate_image

    image = as_rgb_array(path)
    res = calibrate_image(model, calibrator, image, args.batch_size, args.device)
    h, w = image.shape[:2]
    fit = calibrator.meta.get("fit_frame") or []
    caveat = None
    if sorted(fit) != sorted([w, h]):
        caveat = (f"accuracy measured on {fit[0]}x{fit[1]} frames only; this one is {w}x{h}" if len(fit) == 2
                  else "accuracy not measured for this frame size")
    return {"path": path, "k1": round(res["k1"], 5), "k1_std": round(res["k1_std"], 5), "band": res["band"],
            "band_probabilities": res["band_probabilities"], "bin": res["bin"], "bin_label": calibrator.meta["bin_labels"][res["bin"]],
            "bin_probabilities": res["bin_probabilities"], "n_tiles": res["n_tiles"], "width": w, "height": h,
            "model_id": model.model_id, "caveat": caveat}


def run(args) -> int:
    """Calibrate each photo; a photo that cannot be read is reported on one line and the others go on."""
    from exiflang.device import resolve_device
    from exiflang.imageio import ImageLoadError
    from exiflang.probes.radial import RadialError

    args.device = resolve_device(args.device)
    model, calibrator = _load(args)
    failed = 0
    for path in args.photos:
        try:
            res = _one(path, model, calibrator, args)
        except (ImageLoadError, RadialError) as exc:
            msg = str(exc)  # the image loader names the file itself; say it once
            print(f"exiflang calibrate: {msg if msg.startswith(path) else f'{path}: {msg}'}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            note = f"   [{res['caveat']}]" if res["caveat"] else ""
            print(f"{path}: k1 = {res['k1']:+.4f} ± {res['k1_std']:.4f}  {res['band']} "
                  f"(p = {res['band_probabilities'][res['band']]:.2f})  most probable bin {res['bin_label']}{note}",
                  flush=True)
    return 1 if failed else 0
