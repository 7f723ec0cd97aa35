"""Capture-and-processing history as language: on-the-fly processing of training photos, written as tags.

A share of photo visits (`HistoryConfig.prob`, about half) is processed before cropping: gamma, blur or
sharpening, resampling, additive noise, then JPEG re-compression (single or double, with or without chroma
subsampling), in that order, as a re-save pipeline would apply them. What was applied is appended to the
photo's EXIF text in the same "Tag Name: value" form, so the same photo with two histories has two texts and
the image encoder has to read the traces from the pixels: recognising the scene or a memorised camera is not
enough to pick the right text.

The 8x8 JPEG block phase is a tag too (`JPEG Block Row Offset`, `JPEG Block Column Offset`): the crop's
offset modulo 8 from the last JPEG grid its pixels went through (the camera's, or the re-compression's). A
pasted region keeps its source's grid, misaligned with the target's, so reading the phase from pixels is the
strongest single cue on lossless pastes; crops cut at every offset with one shared text teach the opposite
(phase invariance). Pixels resampled after their last compression have no grid and get no phase tags.

A re-save after a splice leaves the pasted region's earlier grid misaligned with the last one, while the rest of
the photo was re-compressed on its own camera grid (aligned double compression). So a processed visit whose last
step is a re-compression that the camera's grid survived into (no resampling before it) also gets the camera grid's
offset from the last one (`Original JPEG Grid Row Offset`, `... Column Offset`), and a share of processed windows
(`HistoryConfig.aligned_windows`) start on the camera's grid, the case of a whole photo re-saved: without both,
the text never tells aligned from misaligned double compression apart, and 63 of 64 random windows are misaligned.

A share of visits (`HistoryConfig.warp`, off by default) is first lens-warped as a whole frame (radial
Brown–Conrady distortion with k1 from `WARP_K1`, lensfun's range; `data.warp`), the optical centre at the
photo's centre: `Lens Distortion k1` and `Distance From Optical Centre` (the radius of the processed window's
centre, 1 = half the shorter side, in steps of 0.1; distortion is a function of the radius) are visit tags. Not
per crop: the patch-patch term needs pairs of crops with one text, and the window is 320 px, about ±0.25 in r.
This is the lever the method offers for camera calibration (issue 24): resampling geometry as processing history.

Values are drawn from small fixed sets (`tag_vocabulary` lists every possible tag string), so a frozen text
encoder's features for every tag can be computed once. Everything random comes from the generator passed in,
which the batch builder seeds from (seed, epoch, photo), so a training step stays a pure function of
(seed, step) and resumes exactly.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

GAMMAS = (0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4)
BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.5)
SHARPEN_AMOUNTS = (0.5, 1.0, 1.5, 2.0)
RESAMPLE_FACTORS = tuple(round(0.5 + 0.05 * i, 2) for i in range(21) if i != 10)  # 0.5..1.5 without 1.0
KERNELS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
NOISE_SIGMAS = (1, 2, 3, 4, 6, 8)
QUALITIES = tuple(range(50, 99))
SUBSAMPLING = {"4:4:4": 0, "4:2:0": 2}
# k1 of a lens warp: lensfun's 1 % .. 99 % quantiles (-0.089 .. +0.072), denser near 0 where most lenses sit.
WARP_K1 = (-0.09, -0.06, -0.04, -0.025, -0.015, -0.008, 0.008, 0.015, 0.025, 0.04, 0.06)
RADIUS_STEPS = tuple(round(0.1 * i, 1) for i in range(18))  # 0.0 .. 1.7: a 4:3 frame's corner is at 5/3
RESAMPLING = ("resample", "warp")  # ops after which no JPEG grid survives in the pixels
OPS = ("gamma", "blur", "resample", "noise", "jpeg", "double_jpeg")
# Each op's chance of being applied on a processed visit (at least one always is).
OP_PROBS = {"gamma": 0.25, "blur": 0.3, "resample": 0.35, "noise": 0.3, "jpeg": 0.6, "double_jpeg": 0.35}


@dataclass(frozen=True)
class HistoryConfig:
    """Which processing a training visit may get; every field is an ablation switch."""

    prob: float = 0.5  # share of visits processed
    gamma: bool = True
    blur: bool = True  # blur or sharpening
    resample: bool = True
    noise: bool = True
    jpeg: bool = True  # single re-compression
    double_jpeg: bool = True
    phase_tags: bool = True  # the crop's 8x8 block offset as tags
    window: int = 320  # side of the processed window (output pixels) the visit's crops are cut from
    # Off by default, as in every recipe saved before they existed (so those resume and retrain exactly):
    original_grid_tags: bool = False  # the camera grid's offset from a re-compression's grid, as tags
    aligned_windows: float = 0.0  # share of processed windows that start on the camera's grid
    shared_history: float = 0.0  # share of batches whose photos all get one and the same processing
    warp: float = 0.0  # share of visits whose whole photo is lens-warped first (issue 24)

    @property
    def enabled_ops(self) -> list[str]:
        """The processing ops switched on."""
        return [op for op in OPS if getattr(self, op)] if self.prob > 0 else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the training recipe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "HistoryConfig":
        """From `to_dict` output (unknown keys rejected); None gives processing and phase tags off."""
        if data is None:
            return cls(prob=0.0, phase_tags=False)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown history setting(s) {sorted(unknown)}; known: {sorted(known)}")
        config = cls(**data)
        for name in ("aligned_windows", "shared_history", "warp"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(config, name)}")
        return config



@dataclass(frozen=True)
class History:
    """What one visit applied: op name -> parameter, in order of application."""

    steps: tuple[tuple[str, Any], ...] = ()

    @property
    def has_grid(self) -> bool:
        """Whether the pixels still carry a JPEG grid of known origin (no resampling after the last compression)."""
        names = [name for name, _ in self.steps]
        last_resampling = max((i for i, n in enumerate(names) if n in RESAMPLING), default=-1)
        if last_resampling < 0:
            return True
        last_jpeg = max((i for i, n in enumerate(names) if n in ("jpeg", "double_jpeg")), default=-1)
        return last_jpeg > last_resampling

    @property
    def keeps_original_grid(self) -> bool:
        """Whether the camera's grid reached the last re-compression (no resampling before it): double compression."""
        return self.recompressed and all(name not in RESAMPLING for name, _ in self.steps)

    @property
    def warp_k1(self) -> float | None:
        """The lens warp's k1, or None when the visit was not warped."""
        return next((value for name, value in self.steps if name == "warp"), None)

    @property
    def recompressed(self) -> bool:
        """Whether the visit ended with a JPEG re-compression (the block phase is then the re-compression's)."""
        return any(name in ("jpeg", "double_jpeg") for name, _ in self.steps)

    def tags(self) -> list[str]:
        """The history as "Tag Name: value" strings, in order of application."""
        out: list[str] = []
        for name, value in self.steps:
            if name == "warp":
                out.append(warp_tag(value))
            elif name == "gamma":
                out.append(f"Gamma: {value}")
            elif name == "blur":
                kind, amount = value
                out.append(f"Blurred: {amount}" if kind == "blur" else f"Sharpened: {amount}")
            elif name == "resample":
                factor, kernel = value
                out += [f"Resampled: {factor:.2f}", f"Resampling Kernel: {kernel}"]
            elif name == "noise":
                out.append(f"Added Noise: {value}")
            elif name == "jpeg":
                quality, sub = value
                out += [f"Recompressed JPEG Quality: {quality}", f"Recompressed Chroma Subsampling: {sub}"]
            elif name == "double_jpeg":
                first, quality, sub = value
                out += [f"Earlier JPEG Quality: {first}", f"Recompressed JPEG Quality: {quality}",
                        f"Recompressed Chroma Subsampling: {sub}"]
        return out


def phase_tags(dy: int, dx: int) -> list[str]:
    """The two block-phase tags of a crop at offset (dy, dx) modulo 8 from its pixels' JPEG grid."""
    return [f"JPEG Block Row Offset: {dy % 8}", f"JPEG Block Column Offset: {dx % 8}"]


def original_grid_tags(dy: int, dx: int) -> list[str]:
    """The camera grid's offset (dy, dx) modulo 8 from the last re-compression's grid (0, 0: aligned)."""
    return [f"Original JPEG Grid Row Offset: {dy % 8}", f"Original JPEG Grid Column Offset: {dx % 8}"]


def warp_tag(k1: float) -> str:
    """The visit tag of a lens warp."""
    return f"Lens Distortion k1: {k1:+.3f}"


def radius_tag(radius: float) -> str:
    """A window's distance from the optical centre (1 = half the shorter side), to the nearest 0.1 up to 1.7."""
    return f"Distance From Optical Centre: {min(round(radius, 1), RADIUS_STEPS[-1]):.1f}"


def tag_vocabulary(warp: bool = False) -> list[str]:
    """Every tag string a history or a block phase can produce, sorted (for precomputed text features); the
    lens-warp tags only for a recipe that warps (so the vocabulary of every earlier recipe is unchanged)."""
    tags = {f"Gamma: {g}" for g in GAMMAS}
    tags |= {f"Blurred: {s}" for s in BLUR_SIGMAS} | {f"Sharpened: {a}" for a in SHARPEN_AMOUNTS}
    tags |= {f"Resampled: {f:.2f}" for f in RESAMPLE_FACTORS} | {f"Resampling Kernel: {k}" for k in KERNELS}
    tags |= {f"Added Noise: {s}" for s in NOISE_SIGMAS}
    tags |= {f"Recompressed JPEG Quality: {q}" for q in QUALITIES} | {f"Earlier JPEG Quality: {q}" for q in QUALITIES}
    tags |= {f"Recompressed Chroma Subsampling: {s}" for s in SUBSAMPLING}
    for d in range(8):
        tags |= set(phase_tags(d, d)) | set(original_grid_tags(d, d))
    if warp:
        tags |= {warp_tag(k) for k in WARP_K1} | {radius_tag(r) for r in RADIUS_STEPS}
    return sorted(tags)


def _pick(rng: np.random.Generator, values: tuple) -> Any:
    """One value of a tuple."""
    return values[int(rng.integers(len(values)))]


def sample_history(cfg: HistoryConfig, rng: np.random.Generator) -> History:
    """Draw a visit's history (empty for an unprocessed visit); the number of draws is fixed per call."""
    processed = rng.random() < cfg.prob
    # Draw everything unconditionally so one switch never shifts another op's random numbers.
    coins = {op: rng.random() < OP_PROBS[op] for op in OPS}
    fallback = rng.integers(1 << 30)
    params = {
        "gamma": _pick(rng, GAMMAS),
        "blur": ("blur", _pick(rng, BLUR_SIGMAS)) if rng.random() < 0.5 else ("sharpen", _pick(rng, SHARPEN_AMOUNTS)),
        "resample": (_pick(rng, RESAMPLE_FACTORS), _pick(rng, tuple(KERNELS))),
        "noise": _pick(rng, NOISE_SIGMAS),
        "jpeg": (_pick(rng, QUALITIES), _pick(rng, tuple(SUBSAMPLING))),
    }
    first = _pick(rng, QUALITIES)
    params["double_jpeg"] = (first, *params["jpeg"])
    # Drawn last and only when switched on, so that every earlier recipe keeps its draws.
    warp = (("warp", _pick(rng, WARP_K1)),) if cfg.warp > 0 and rng.random() < cfg.warp else ()
    ops = cfg.enabled_ops
    if not processed or not ops:
        return History(warp)
    chosen = [op for op in ops if coins[op]]
    if "jpeg" in chosen and "double_jpeg" in chosen:  # one re-save pipeline ends in one kind of compression
        chosen.remove("jpeg")
    if not chosen:
        chosen = [ops[int(fallback) % len(ops)]]
    return History(warp + tuple((op, params[op]) for op in OPS if op in chosen))


def shared_batch_history(cfg: HistoryConfig, seed: int, step: int) -> History | None:
    """The one history every photo of a step's batch gets, for a share `cfg.shared_history` of steps (else None).

    Why: a desk receives a whole composite re-saved or resized at once, so every patch of it shares one history
    and only the cameras differ. With a history drawn per photo, the texts of a batch almost always differ by
    their history tags alone, so the model can match them without reading the camera through the processing;
    a shared history leaves the camera as the only thing that tells the batch's texts apart. Drawn from
    (seed, step) only, so every rank of a distributed step draws the same one.
    """
    if cfg.shared_history <= 0 or not cfg.enabled_ops:
        return None
    rng = np.random.default_rng([seed, step, 0x5EED])
    if rng.random() >= cfg.shared_history:
        return None
    return sample_history(replace(cfg, prob=1.0), rng)


def source_window(history: History, out_size: int) -> int:
    """Side of the source window that the history turns into an `out_size` window (resampling changes it)."""
    for name, value in history.steps:
        if name == "resample":
            return int(np.ceil(out_size / value[0]))
    return out_size


def _jpeg(arr: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """Encode with Pillow's libjpeg at this quality and subsampling, and decode back."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling])
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"))


def apply_history(window: np.ndarray, history: History, out_size: int, rng: np.random.Generator) -> np.ndarray:
    """Process an HxWx3 uint8 source window (side `source_window(history, out_size)`) into out_size x out_size."""
    arr = np.ascontiguousarray(window)
    for name, value in history.steps:  # "warp" is not here: it was applied to the whole frame (visit_crops)
        if name == "gamma":
            lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** value), 0, 255).astype(np.uint8)
            arr = lut[arr]
        elif name == "blur":
            kind, amount = value
            img = Image.fromarray(arr)
            if kind == "blur":
                arr = np.asarray(img.filter(ImageFilter.GaussianBlur(amount)))
            else:
                arr = np.asarray(img.filter(ImageFilter.UnsharpMask(radius=1, percent=int(100 * amount), threshold=0)))
        elif name == "resample":
            _, kernel = value
            arr = np.asarray(Image.fromarray(arr).resize((out_size, out_size), KERNELS[kernel]))
        elif name == "noise":
            noisy = arr.astype(np.float32) + rng.normal(0.0, float(value), arr.shape).astype(np.float32)
            arr = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        elif name == "jpeg":
            arr = _jpeg(arr, *value)
        elif name == "double_jpeg":
            first, quality, sub = value
            arr = _jpeg(_jpeg(arr, first, sub), quality, sub)
    return np.ascontiguousarray(arr[:out_size, :out_size])


def estimate_jpeg_quality(pixels: np.ndarray, qualities: tuple[int, ...] = QUALITIES,
                          subsampling: str = "4:4:4") -> int:
    """The JPEG quality a grid-aligned decoded image was last saved at: re-saving at it changes the pixels least.

    JPEG is nearly idempotent at its own quantisation: decoding and re-encoding at the same quality and grid
    moves pixels far less than any other quality does (the minimum over candidates is the estimate).
    """
    arr = np.ascontiguousarray(pixels)
    errors = [float(np.mean(np.abs(_jpeg(arr, q, subsampling).astype(np.int16) - arr))) for q in qualities]
    return int(qualities[int(np.argmin(errors))])


__all__ = ["HistoryConfig", "History", "OPS", "WARP_K1", "sample_history", "shared_batch_history", "apply_history",
           "source_window", "phase_tags", "original_grid_tags", "tag_vocabulary", "warp_tag", "radius_tag",
           "estimate_jpeg_quality"]
