"""Camera properties from pixels: what the frozen embedding knows about the camera.

* `features`   — K random or grid patches per photo, embedded by a frozen `ExifModel`;
* `ranking`    — zero-shot image → EXIF ranking (`exiflang predict-exif`);
* `check`      — own-EXIF vs other cameras' texts, calibrated (`exiflang check-exif`);
* `linear`     — logistic-regression probes split by photo (make, model, exposure, ISO, f-number, focal);
* `distortion` — synthetic radial distortion with lensfun coefficients, and its bins;
* `casia`      — real-vs-manipulated probe on CASIA v1.0 (resized / centre-cropped);
* `tasks`      — each probe end to end, beside chance and the baselines (`exiflang probe`).
"""
