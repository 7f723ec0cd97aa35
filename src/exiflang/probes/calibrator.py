"""The shipped k1 probe: its files (safetensors + JSON, beside the model it belongs to) and its use on a photo.

A probe reads one model's embeddings, so it names that model's id and is refused with any other model. Files,
in the model's weights folder: ``k1_probe.safetensors`` (standardisation, bin logits, each bin's k1 mean and
variance) and ``k1_probe.json`` (model id, tile layout, rings, bins, bands, measured accuracy, provenance).

For a photo, the probe gives a posterior over the 5 k1 bins; the estimate is the posterior mean of k1 (each
bin at the mean k1 of its training frames) and its uncertainty the posterior standard deviation (the spread
between bins plus each bin's own k1 spread). The band is the band with the most posterior mass (each bin
counted in the band of its mean k1): the posterior mean is the best k1 under squared error, the most probable
band the best band under 0/1 error, and they can differ when the probe is sure of a strong warp but not of its
sign (then k1 is near 0 with a large k1_std).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ExiflangError

PROBE_FORMAT = "exiflang-k1-probe-1"
PROBE_WEIGHTS = "k1_probe.safetensors"
PROBE_JSON = "k1_probe.json"
BANDS = ("barrel", "none", "pincushion")
TENSORS = ("mean", "scale", "cls_w", "cls_b", "bin_k1_mean", "bin_k1_var")


class CalibratorError(ExiflangError):
    """The k1 probe is missing, damaged or belongs to another model; the message says which and why."""


@dataclass
class Calibrator:
    """A fitted k1 probe: numbers (`tensors`) and what they mean (`meta`)."""

    tensors: dict
    meta: dict

    @property
    def model_id(self) -> str:
        """Id of the model whose embeddings the probe reads."""
        return str(self.meta["model_id"])

    def check_model(self, model) -> None:
        """CalibratorError unless `model` is the one the probe was fitted on."""
        got = getattr(model, "model_id", None)
        if got != self.model_id:
            raise CalibratorError(f"the k1 probe was fitted on model {self.model_id}, not {got}; calibrate with "
                                  "that model (the built-in default) or fit a probe for this one "
                                  "(benchmarks/probes.py distortion --write-probe)")

    def posterior(self, ring_feature: np.ndarray) -> np.ndarray:
        """Bin probabilities [n_bins] of one photo's ring feature."""
        t = self.tensors
        z = ((np.asarray(ring_feature, np.float64) - t["mean"]) / t["scale"]) @ t["cls_w"] + t["cls_b"]
        e = np.exp(z - z.max())
        return e / e.sum()

    def estimate(self, ring_feature: np.ndarray) -> dict:
        """{k1, k1_std, band, band_probabilities, bin, bin_probabilities} of one photo's ring feature."""
        p = self.posterior(ring_feature)
        mean, var = self.tensors["bin_k1_mean"], self.tensors["bin_k1_var"]
        k1 = float(p @ mean)
        std = float(np.sqrt(max(p @ (var + (mean - k1) ** 2), 0.0)))
        # The band is the most probable one (each bin counted in the band of its mean k1), not the band of the
        # posterior mean: a strong warp whose sign the probe doubts puts mass on both outer bins, and their mean
        # falls near 0 ("none") although "none" is the least likely answer.
        bin_band = np.searchsorted(np.asarray(self.meta["band_edges"]), mean, side="right")
        mass = np.array([p[bin_band == j].sum() for j in range(len(BANDS))])
        return {"k1": k1, "k1_std": std, "band": BANDS[int(np.argmax(mass))],
                "band_probabilities": {b: round(float(m), 4) for b, m in zip(BANDS, mass)},
                "bin": int(np.argmax(p)), "bin_probabilities": [round(float(v), 4) for v in p]}

    def save(self, folder: str | Path) -> None:
        """Write the two files into `folder` (atomically each)."""
        import json

        from safetensors.numpy import save

        from ..imageio import atomic_write_stream, atomic_write_text

        blob = save({k: np.ascontiguousarray(self.tensors[k], dtype=np.float32) for k in TENSORS})
        atomic_write_stream(Path(folder) / PROBE_WEIGHTS, lambda fh: fh.write(blob))
        atomic_write_text(Path(folder) / PROBE_JSON, json.dumps(self.meta, indent=1) + "\n")


def _check(tensors: dict, meta: dict, source: str) -> None:
    """CalibratorError naming `source` unless the tensors fit together and the JSON says what the code expects."""
    if meta.get("format") != PROBE_FORMAT:
        raise CalibratorError(f"{source}: not a k1 probe of format {PROBE_FORMAT} (format {meta.get('format')!r})")
    missing = [k for k in TENSORS if k not in tensors]
    if missing or not isinstance(meta.get("model_id"), str):
        raise CalibratorError(f"{source}: incomplete k1 probe (missing {missing or 'model_id'})")
    n_feat, n_bins = tensors["cls_w"].shape if tensors["cls_w"].ndim == 2 else (-1, -1)
    shapes_ok = (tensors["mean"].shape == tensors["scale"].shape == (n_feat,) and tensors["cls_b"].shape ==
                 tensors["bin_k1_mean"].shape == tensors["bin_k1_var"].shape == (n_bins,))
    if not shapes_ok or n_bins < 2 or not all(np.all(np.isfinite(tensors[k])) for k in TENSORS):
        raise CalibratorError(f"{source}: the k1 probe's tensors do not fit together (shapes or non-finite values)")
    rings = meta.get("ring_edges")
    edges = meta.get("band_edges")
    if not (isinstance(rings, list) and n_feat % (len(rings) + 1) == 0 and isinstance(edges, list) and len(edges) == 2
            and all(isinstance(v, (int, float)) for v in rings + edges) and edges[0] < 0 < edges[1]):
        raise CalibratorError(f"{source}: the k1 probe's ring or band edges are unusable")


def load_calibrator(folder: str | Path) -> Calibrator:
    """The probe shipped in a model's weights folder (`folder`), checked; CalibratorError when absent or bad."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from ..jsonfile import read_json_object

    folder = Path(folder)
    if not (folder / PROBE_JSON).is_file() or not (folder / PROBE_WEIGHTS).is_file():
        raise CalibratorError(f"{folder}: no k1 probe here ({PROBE_JSON} + {PROBE_WEIGHTS}); only the built-in "
                              "default model ships one")
    meta = read_json_object(folder / PROBE_JSON, CalibratorError, max_bytes=1 << 20)
    try:
        tensors = {k: v.astype(np.float64) for k, v in load_file(str(folder / PROBE_WEIGHTS)).items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CalibratorError(f"{folder / PROBE_WEIGHTS}: cannot read the k1 probe ({exc})") from exc
    _check(tensors, meta, str(folder))
    return Calibrator(tensors, meta)


def calibrate_image(model, calibrator: Calibrator, image: np.ndarray, batch_size: int = 64,
                    device: str = "cpu") -> dict:
    """{k1, k1_std, band, ...} of one HxWx3 uint8 frame whose optical centre is its centre."""
    from .radial import embed_frame, ring_features, ring_index

    calibrator.check_model(model)
    emb, radii = embed_frame(model, image, batch_size, device)
    edges = calibrator.meta["ring_edges"]
    out = calibrator.estimate(ring_features(emb, ring_index(radii, edges), len(edges) + 1))
    out["n_tiles"] = int(len(radii))
    return out


__all__ = ["PROBE_FORMAT", "PROBE_WEIGHTS", "PROBE_JSON", "BANDS", "CalibratorError", "Calibrator",
           "load_calibrator", "calibrate_image"]
