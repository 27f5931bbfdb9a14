"""Images: scikit-image's bundled photos and procedural patterns (for neural fields), 8×8
digits (scikit-learn) and a synthetic shapes/textures set (for CNN/ViT classification).

Images are float32 in [0, 1], shape (H, W) for gray or (H, W, 3) for colour.
"""

from __future__ import annotations

import numpy as np
import torch

from explorer.data.signals import field_task
from explorer.data.task import Task, check_fraction, rng, split_rows
from explorer.validation import check_flag, check_number, check_positive_int

__all__ = ["PHOTOS", "PROCEDURAL", "digits", "image", "image_prior", "image_task", "shapes"]

PHOTOS = ("camera", "astronaut", "coins", "chelsea", "coffee", "horse", "moon", "text", "retina")
PROCEDURAL = ("checker", "zone_plate", "sines", "disks")
SHAPES = ("circle", "square", "triangle", "cross", "stripes", "checks")


def _photo(name: str) -> np.ndarray:
    from skimage import data as skdata  # imported lazily: ~0.3 s

    img = np.asarray(getattr(skdata, name)(), dtype=np.float64)
    if img.dtype == bool or img.max() <= 1.0:
        return img
    return img / 255.0


def _procedural(name: str, size: int, seed: int) -> np.ndarray:
    u = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(u, u, indexing="ij")
    if name == "checker":
        return ((np.floor(xx * 8) + np.floor(yy * 8)) % 2).astype(np.float64)
    if name == "zone_plate":  # local frequency grows linearly with radius: all scales at once
        r2 = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
        return 0.5 + 0.5 * np.cos(np.pi * size / 2 * r2 * 2)
    if name == "sines":  # a few plane waves with integer frequencies (exact DFT bins)
        gen = rng(seed)
        out = np.zeros_like(xx)
        for k in (1, 3, 8):
            kx, ky = gen.integers(-k, k + 1, 2)
            out += np.cos(2 * np.pi * (kx * xx + ky * yy) + gen.uniform(0, 2 * np.pi))
        return (out - out.min()) / (np.ptp(out) or 1.0)
    gen = rng(seed)  # disks
    out = np.zeros_like(xx)
    for _ in range(12):
        cx, cy, r = gen.uniform(0.1, 0.9), gen.uniform(0.1, 0.9), gen.uniform(0.04, 0.15)
        out[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = gen.uniform(0.3, 1.0)
    return out


def image(name: str = "camera", size: int = 64, *, gray: bool = True, seed: int = 0) -> np.ndarray:
    """A ``size``×``size`` image: a bundled photo (``PHOTOS``) or a pattern (``PROCEDURAL``)."""
    check_positive_int(size, "size", minimum=4)
    check_flag(gray, "gray")
    check_positive_int(seed, "seed", minimum=0)
    if name in PHOTOS:
        from skimage.color import rgb2gray
        from skimage.transform import resize

        img = _photo(name)
        if img.ndim == 3 and img.shape[-1] == 4:
            img = img[..., :3]
        if gray and img.ndim == 3:
            img = rgb2gray(img)
        h, w = img.shape[:2]
        side = min(h, w)  # centre crop to a square, then area-resize
        img = img[
            (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side
        ]
        img = resize(img, (size, size), anti_aliasing=True)
    elif name in PROCEDURAL:
        img = _procedural(name, size, seed)
    else:
        raise ValueError(
            f"unknown image {name!r}; choose a bundled photo {PHOTOS} or a pattern {PROCEDURAL}"
        )
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def image_task(
    name: str = "camera",
    size: int = 64,
    *,
    gray: bool = True,
    holdout_every: int = 2,
    seed: int = 0,
) -> Task:
    """Neural-field task on an image: coordinates (N, 2) in [-1, 1)² → intensities (N, C)."""
    img = image(name, size, gray=gray, seed=seed)
    values = img[..., None] if img.ndim == 2 else img
    return field_task(f"image_{name}", values, holdout_every=holdout_every, seed=seed, image=name)


def image_prior(
    name: str = "camera",
    size: int = 32,
    *,
    noise: float = 0.1,
    code_channels: int = 16,
    code_size: int = 4,
    seed: int = 0,
) -> Task:
    """Deep-image-prior denoising (Ulyanov et al.): a fixed random code → a noisy image.

    x_train = x_test = the code (1, code_channels, code_size, code_size), uniform in [0, 0.1)
    (the input ``ConvDecoder.noise_input`` makes); y_train = the image plus Gaussian noise of std
    ``noise`` (1, 1, size, size); y_test = the clean image. A generator trained on the noisy
    target has test MSE = its error against the clean image (PSNR = −10·log10(MSE), peak 1).
    ``meta["noisy_mse"]`` is the clean-image MSE of the noisy target itself.
    """
    check_positive_int(code_channels, "code_channels")
    check_positive_int(code_size, "code_size")
    check_number(noise, "noise (a standard deviation)", low=0, low_open=True)
    gen = rng(seed)
    clean = image(name, size, seed=seed)[None, None].astype(np.float32)  # (1, 1, size, size)
    noisy = (clean + noise * gen.standard_normal(clean.shape)).astype(np.float32)
    code = (gen.random((1, code_channels, code_size, code_size)) * 0.1).astype(np.float32)
    x, y_noisy, y_clean = (torch.from_numpy(a) for a in (code, noisy, clean))
    meta = {
        "loss": "mse", "shape": (1, size, size), "image": name, "noise": float(noise),
        "noisy_mse": float(((noisy - clean) ** 2).mean()), "seed": seed,
    }  # fmt: skip
    return Task(f"image_prior_{name}", "image", x, y_noisy, x.clone(), y_clean, meta=meta)


def digits(*, test_fraction: float = 0.25, seed: int = 0) -> Task:
    """scikit-learn's 1797 8×8 digits: x (N, 1, 8, 8) in [0, 1], y (N,) in 0..9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0)[:, None].astype(np.float32)
    y = d.target.astype(np.int64)
    parts = split_rows(x, y, test_fraction, rng(seed))
    meta = {"loss": "ce", "n_classes": 10, "shape": (1, 8, 8), "seed": seed}
    return Task("digits", "classification", *parts, meta=meta)


def _draw(cls: str, size: int, gen: np.random.Generator) -> np.ndarray:
    """One ``size``×``size`` image of class ``cls`` with random position, scale and rotation."""
    u = (np.arange(size) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(u, u, indexing="ij")
    if cls in ("stripes", "checks"):  # textures fill the frame at a random frequency/orientation
        f = gen.uniform(2.5, 5.0)
        th = gen.uniform(0, np.pi)
        a = xx * np.cos(th) + yy * np.sin(th)
        b = -xx * np.sin(th) + yy * np.cos(th)
        ph = gen.uniform(0, 1, 2)
        wave = np.sin(2 * np.pi * (f * a + ph[0]))
        if cls == "checks":
            wave = wave * np.sin(2 * np.pi * (f * b + ph[1]))
        return (wave > 0).astype(np.float64)
    cx, cy = gen.uniform(-0.15, 0.15, 2)
    r = gen.uniform(0.18, 0.3)
    th = gen.uniform(0, 2 * np.pi)
    x = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    y = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    if cls == "circle":
        mask = x**2 + y**2 < r**2
    elif cls == "square":
        mask = (np.abs(x) < r * 0.8) & (np.abs(y) < r * 0.8)
    elif cls == "triangle":
        mask = (y > -r / 2) & (y < r - np.sqrt(3) * np.abs(x))
    else:  # cross
        w = r / 3
        mask = ((np.abs(x) < w) & (np.abs(y) < r)) | ((np.abs(y) < w) & (np.abs(x) < r))
    return mask.astype(np.float64)


def shapes(
    n: int = 1200,
    *,
    size: int = 16,
    classes: tuple[str, ...] = SHAPES,
    noise: float = 0.1,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Task:
    """Synthetic shapes (circle, square, triangle, cross) and textures (stripes, checks).

    x (N, 1, size, size) float32, y (N,) class index into ``meta["classes"]``; random pose,
    additive Gaussian pixel ``noise``; classes balanced.
    """
    check_positive_int(n, "n", minimum=len(classes))
    check_positive_int(size, "size", minimum=8)
    check_fraction(test_fraction, "test_fraction", allow_zero=True)
    check_number(noise, "noise", low=0)
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty subset of {SHAPES}, got {classes!r}")
    gen = rng(seed)
    y = np.arange(n, dtype=np.int64) % len(classes)
    x = np.stack([_draw(classes[c], size, gen) for c in y])
    x = x + noise * gen.standard_normal(x.shape)
    meta = {
        "loss": "ce", "n_classes": len(classes), "classes": list(classes),
        "shape": (1, size, size), "noise": noise, "seed": seed,
    }  # fmt: skip
    return Task("shapes", "classification", *split_rows(x[:, None], y, test_fraction, gen), meta)
