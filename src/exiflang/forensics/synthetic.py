"""Self-made test composites: two procedurally generated scenes, each through a different imaging pipeline.

Nothing here reads a photo: the demo and the tests must run on a fresh machine. The host scene goes
through a sensor-like pipeline (RGGB mosaic, signal-dependent noise, bilinear demosaicing, JPEG
q=95); the donor scene is rendered larger, resampled down (Lanczos) and saved as JPEG q=70. A
smooth blob of the donor is pasted into the host and the composite is kept lossless (PNG) so both
sets of traces survive.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def fractal_noise(height: int, width: int, rng: np.random.Generator, beta: float = 2.0) -> np.ndarray:
    """1/f^beta noise in [0, 1] (natural-image-like texture)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** (beta / 2)
    spectrum = amp * np.exp(2j * np.pi * rng.random(amp.shape))
    field = np.fft.irfft2(spectrum, s=(height, width))
    return (field - field.min()) / max(np.ptp(field), 1e-12)


def render_scene(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A float [H, W, 3] scene in [0, 1]: sky-like gradient, textured ground, random coloured shapes."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    top, bottom = rng.random(3), rng.random(3)
    img = top * (1 - yy[..., None]) + bottom * yy[..., None]
    img = img * 0.6 + 0.4 * fractal_noise(height, width, rng)[..., None] * rng.random(3)
    shade = 0.7 + 0.3 * fractal_noise(height, width, rng, beta=2.5)  # one texture shared by every shape (speed)
    for _ in range(int(rng.integers(8, 16))):
        cy, cx = rng.random(2) * (height / max(height, width), width / max(height, width))
        ry, rx = 0.03 + 0.15 * rng.random(2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[inside] = (rng.random(3) * shade[inside][:, None])
    return np.clip(img, 0, 1)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode an HxWx3 uint8 array as JPEG at the given quality and decode it again."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def camera_pipeline(scene: np.ndarray, rng: np.random.Generator, quality: int = 95) -> np.ndarray:
    """Sensor-like processing: RGGB mosaic, shot + read noise, bilinear demosaic, gamma, JPEG."""
    h, w, _ = scene.shape
    linear = scene**2.2
    cfa = np.zeros((h, w, 3), dtype=bool)
    cfa[0::2, 0::2, 0] = cfa[1::2, 1::2, 2] = True
    cfa[0::2, 1::2, 1] = cfa[1::2, 0::2, 1] = True
    raw = (linear * cfa).sum(2)
    raw = raw + rng.normal(0, 1, raw.shape) * np.sqrt(0.0004 * raw + 0.00002)
    kernel_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0
    kernel_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4.0
    out = np.stack(
        [ndimage.convolve(raw * cfa[..., c], kernel_g if c == 1 else kernel_rb, mode="mirror") for c in range(3)], axis=2
    )
    rgb = np.round(np.clip(out, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    return jpeg_roundtrip(rgb, quality)


def resampled_pipeline(scene: np.ndarray, height: int, width: int, quality: int = 70) -> np.ndarray:
    """Noise-free render resampled to HxW with Lanczos, then JPEG at a low quality."""
    big = Image.fromarray(np.round(scene * 255).astype(np.uint8))
    return jpeg_roundtrip(np.asarray(big.resize((width, height), Image.LANCZOS)), quality)


def blob_mask(height: int, width: int, rng: np.random.Generator, area: float = 0.15) -> np.ndarray:
    """A smooth random blob covering about ``area`` of the image (bool HxW)."""
    field = ndimage.gaussian_filter(rng.normal(size=(height // 8 + 1, width // 8 + 1)), 4)
    yy, xx = np.mgrid[0 : field.shape[0], 0 : field.shape[1]]
    cy, cx = field.shape[0] * rng.uniform(0.35, 0.65), field.shape[1] * rng.uniform(0.35, 0.65)
    field = field / field.std() - (((yy - cy) / field.shape[0]) ** 2 + ((xx - cx) / field.shape[1]) ** 2) * 40
    full = ndimage.zoom(field, 8, order=3)[:height, :width]  # smooth outline at full resolution
    return full >= np.quantile(full, 1 - area)


def make_composite(
    height: int = 768, width: int = 1024, seed: int = 0, area: float = 0.15, same_scene: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return (composite HxWx3 uint8, bool mask of the pasted region) from two generated, differently processed images.

    With ``same_scene`` both images show the same scene, so the pasted region's content continues
    seamlessly and only the processing traces differ.
    """
    rng = np.random.default_rng(seed)
    scale = 1.6
    donor_scene = render_scene(int(height * scale), int(width * scale), rng)
    donor = resampled_pipeline(donor_scene, height, width, quality=70)
    if same_scene:
        host_scene = np.asarray(Image.fromarray(np.round(donor_scene * 255).astype(np.uint8)).resize((width, height), Image.BOX)) / 255.0
    else:
        host_scene = render_scene(height, width, rng)
    host = camera_pipeline(host_scene, rng, quality=95)
    mask = blob_mask(height, width, rng, area)
    composite = np.where(mask[..., None], donor, host)
    return composite, mask
