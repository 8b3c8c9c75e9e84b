"""Face crops for the expression CNN: MediaPipe landmarks -> a 48x48 grey crop framed like FER2013.

The same function cuts the crops the CNN is trained on (FER2013 faces) and the crops it sees at run
time (video frames), so both go through identical geometry and resampling:

1. Take 12 landmarks that barely move with expression (`ANCHORS`: eye corners, nose bridge and
   tip, nostril wings, the face outline beside the eyes, top of the forehead; no mouth, brow or
   chin points) as pixel positions in the source image: MediaPipe's normalised x/y times width /
   height, taken as "edge" coordinates (the image spans [0, W] x [0, H]; training and run time
   use the same convention, so any sub-pixel convention of MediaPipe's cancels out).
2. Fit the least-squares similarity transform (rotation, uniform scale, shift; Umeyama's closed
   form) that maps them onto `TEMPLATE`, their mean position in FER2013's 48x48 crops.
3. Resample: warp the source into a (48 f)^2 image, f = ceil(source pixels per crop pixel)
   clamped to [1, 8], with bilinear interpolation and replicated borders, then average f x f
   blocks (INTER_AREA) down to 48x48. The supersampling keeps a large video face from aliasing;
   FER's own 48-px faces get f = 1. Colour becomes grey with OpenCV's RGB->GRAY weights.

`TEMPLATE` was derived by ``python -m models.recipes.train_face_cnn`` (step "template"): the mean
anchor position over the FER2013 training faces where MediaPipe found a face (landmarked on the
upscaled, black-bordered crop of `core.extractors.visual.prepare_small_face`, mapped back to the
48x48 crop), mirrored and averaged with its mirror image so that a horizontally flipped aligned
crop is again an aligned crop, and rounded to 0.01 px. The recipe re-derives it and stops if the
constant here no longer matches.

Everything here is deterministic (same landmarks and image -> same bytes) and needs only numpy and
OpenCV. `align_face` takes about 0.5 ms of CPU for a face in a 640x360 frame
(assets/face/diagnostics.json).
"""
from __future__ import annotations

import math

import numpy as np

CROP_SIZE = 48
MAX_SUPERSAMPLE = 8

#: MediaPipe face-mesh indices of the alignment points. Pairs are mirror images (subject's right,
#: subject's left); the last four lie on the face's midline.
MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    (33, 263),  # outer eye corners
    (133, 362),  # inner eye corners
    (98, 327),  # nostril wings
    (234, 454),  # face outline at eye height
)
MIDLINE: tuple[int, ...] = (10, 168, 6, 1)  # top of forehead, between the eyes, nose bridge, nose tip
ANCHORS: tuple[int, ...] = tuple(i for pair in MIRROR_PAIRS for i in pair) + MIDLINE

#: (x, y) of each ANCHORS landmark in a 48x48 FER2013 crop, edge coordinates (see module docstring).
TEMPLATE = np.array(
    [
        [11.85, 18.32], [36.15, 18.32],  # outer eye corners
        [19.12, 18.90], [28.88, 18.90],  # inner eye corners
        [19.59, 30.28], [28.41, 30.28],  # nostril wings
        [5.35, 21.49], [42.65, 21.49],  # face outline
        [24.00, 4.97], [24.00, 17.82], [24.00, 20.16], [24.00, 29.38],  # forehead .. nose tip
    ],
    dtype=np.float64,
)
TEMPLATE.setflags(write=False)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix [sR | t] minimising sum |s R src_k + t - dst_k|^2 (Umeyama 1991, no reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var_s = float((a**2).sum()) / len(src)
    if var_s <= 1e-12:
        raise ValueError("alignment points coincide")
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d)) / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def anchor_points(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """(12, 2) edge-coordinate pixel positions of ANCHORS from (478, 2+) normalised landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[list(ANCHORS), :2] * np.array([width, height], dtype=np.float64)


def crop_transform(landmarks: np.ndarray, width: int, height: int, template: np.ndarray | None = None) -> np.ndarray:
    """2x3 edge-coordinate map from the source image to the 48x48 crop."""
    return similarity_transform(anchor_points(landmarks, width, height), TEMPLATE if template is None else template)


def warp_to_crop(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Resample `image` (H, W[, 3]) uint8 through the 2x3 edge-coordinate `matrix` -> (48, 48) uint8 grey."""
    import cv2

    m = np.asarray(matrix, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))  # crop pixels per source pixel
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError("degenerate face transform")
    f = int(min(MAX_SUPERSAMPLE, max(1, math.ceil(1.0 / scale - 1e-6))))
    # OpenCV puts pixel centres at integers: x_c = x_edge - 0.5 on both sides.
    big = f * m
    big[:, 2] = f * (m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2]) - 0.5
    size = CROP_SIZE * f
    warped = cv2.warpAffine(image, big, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if f > 1:
        warped = cv2.resize(warped, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    if warped.ndim == 3:
        warped = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(warped)


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """48x48 grey uint8 crop of the face whose MediaPipe landmarks (normalised x/y) are given.

    `image` is the frame the landmarks were found in: (H, W) grey or (H, W, 3) RGB uint8.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3) uint8, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    return warp_to_crop(img, crop_transform(landmarks, w, h, template))


def standardize_crops(crops: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 -> (N, 1, 48, 48) float32 with zero mean and unit std per crop.

    Per-crop standardisation removes overall brightness and contrast, which differ far more
    between a webcam and FER2013's web photos than the expression does. The std floor keeps a
    flat (e.g. black) crop from being blown up into noise.
    """
    x = np.asarray(crops, dtype=np.float32).reshape(-1, 1, CROP_SIZE, CROP_SIZE) / 255.0
    mean = x.mean(axis=(2, 3), keepdims=True)
    std = x.std(axis=(2, 3), keepdims=True)
    return (x - mean) / np.maximum(std, 0.02)


def symmetrize_template(points: np.ndarray) -> np.ndarray:
    """Average ANCHORS positions with their mirror image about the vertical centre line x = 24."""
    p = np.asarray(points, dtype=np.float64)
    out = p.copy()
    pos = {idx: k for k, idx in enumerate(ANCHORS)}
    centre = CROP_SIZE / 2.0
    for right, left in MIRROR_PAIRS:
        r, l = pos[right], pos[left]
        half_width = (p[l, 0] - p[r, 0]) / 2.0
        y = (p[r, 1] + p[l, 1]) / 2.0
        out[r] = [centre - half_width, y]
        out[l] = [centre + half_width, y]
    for idx in MIDLINE:
        out[pos[idx], 0] = centre
    return out
