"""Feature fusion (paper 004): deep features + 256-bin LBP + bag of SIFT features → PCA per group → MLP.

Fitting uses scikit-learn (KMeans for the visual vocabulary, PCA keeping 95 % of the variance per group,
StandardScaler, an MLP with one ReLU hidden layer); the fitted parts are kept as plain arrays so they are
stored in the safetensors file beside the CNN weights (never pickled) and inference is numpy only.

Paper 004 used SURF keypoints; SURF is patented (opencv "non-free"), so descriptors are SIFT, computed on
a dense grid: a 96 px crop of a smooth cell has too few detected keypoints for a stable histogram, and
dense SIFT is the usual bag-of-features choice for small images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .features import lbp_histogram

VOCABULARY_SIZE = 150
PCA_VARIANCE = 0.95
GROUPS = ("deep", "lbp", "bof")


def _to_uint8(gray: np.ndarray) -> np.ndarray:
    gray = np.asarray(gray, np.float32)
    lo, hi = float(gray.min()), float(gray.max())
    scaled = (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray)
    return (scaled * 255).round().astype(np.uint8)


def dense_sift(gray: np.ndarray, step: int = 8, size: float = 12.0) -> np.ndarray:
    """SIFT descriptors (n × 128) on a regular grid over a single-cell crop (per-crop contrast stretch)."""
    import cv2

    image = _to_uint8(gray)
    height, width = image.shape
    half = size / 2
    keypoints = [
        cv2.KeyPoint(float(x), float(y), size)
        for y in np.arange(half, height - half + 1, step)
        for x in np.arange(half, width - half + 1, step)
    ]
    _, descriptors = cv2.SIFT_create().compute(image, keypoints)
    if descriptors is None:
        return np.zeros((0, 128), np.float32)
    return descriptors.astype(np.float32)


def lbp_256(gray_images: np.ndarray) -> np.ndarray:
    """N × 256 normalized LBP histograms (the classic 8-neighbour codes, paper 004)."""
    return np.stack([lbp_histogram(g, bins=256) for g in gray_images]).astype(np.float32)


def _assign(descriptors: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    d2 = (descriptors**2).sum(1)[:, None] - 2 * descriptors @ vocabulary.T + (vocabulary**2).sum(1)[None, :]
    return d2.argmin(axis=1)


def bof_histograms(descriptor_sets: list[np.ndarray], vocabulary: np.ndarray) -> np.ndarray:
    out = np.zeros((len(descriptor_sets), len(vocabulary)), np.float32)
    for i, descriptors in enumerate(descriptor_sets):
        if len(descriptors):
            counts = np.bincount(_assign(descriptors, vocabulary), minlength=len(vocabulary))
            out[i] = counts / counts.sum()
    return out


@dataclass
class FusionHead:
    """The fitted non-CNN part of the feature-fusion classifier, as arrays."""

    vocabulary: np.ndarray  # VOCABULARY_SIZE × 128
    pca: dict[str, tuple[np.ndarray, np.ndarray]]  # group → (mean, components k × d)
    scaler: tuple[np.ndarray, np.ndarray]  # mean, scale of the concatenated PCA features
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # MLP (W, b) per layer

    def group_features(self, deep: np.ndarray, gray_images: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "deep": np.asarray(deep, np.float32),
            "lbp": lbp_256(gray_images),
            "bof": bof_histograms([dense_sift(g) for g in gray_images], self.vocabulary),
        }

    def fused(self, groups: dict[str, np.ndarray]) -> np.ndarray:
        parts = [(groups[name] - self.pca[name][0]) @ self.pca[name][1].T for name in GROUPS]
        return (np.concatenate(parts, axis=1) - self.scaler[0]) / self.scaler[1]

    def predict_proba(self, deep: np.ndarray, gray_images: np.ndarray) -> np.ndarray:
        x = self.fused(self.group_features(deep, gray_images))
        for index, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if index < len(self.layers) - 1:
                x = np.maximum(x, 0)
        x = x - x.max(axis=1, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)

    # ------------------------------------------------------------------ storage as named arrays
    def to_arrays(self, prefix: str = "fusion.") -> dict[str, np.ndarray]:
        arrays = {
            f"{prefix}vocabulary": self.vocabulary,
            f"{prefix}scaler.mean": self.scaler[0],
            f"{prefix}scaler.scale": self.scaler[1],
        }
        for name, (mean, components) in self.pca.items():
            arrays[f"{prefix}pca.{name}.mean"] = mean
            arrays[f"{prefix}pca.{name}.components"] = components
        for index, (weight, bias) in enumerate(self.layers):
            arrays[f"{prefix}mlp.{index}.weight"] = weight
            arrays[f"{prefix}mlp.{index}.bias"] = bias
        return {k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "fusion.") -> FusionHead:
        get = lambda key: np.asarray(arrays[prefix + key], np.float32)  # noqa: E731
        layers, index = [], 0
        while f"{prefix}mlp.{index}.weight" in arrays:
            layers.append((get(f"mlp.{index}.weight"), get(f"mlp.{index}.bias")))
            index += 1
        return cls(
            vocabulary=get("vocabulary"),
            pca={name: (get(f"pca.{name}.mean"), get(f"pca.{name}.components")) for name in GROUPS},
            scaler=(get("scaler.mean"), get("scaler.scale")),
            layers=layers,
        )


def fit_fusion_head(
    deep: np.ndarray,
    gray_images: np.ndarray,
    targets: np.ndarray,
    *,
    seed: int = 0,
    hidden: int = 128,
    alpha: float = 1e-2,
    vocabulary_size: int = VOCABULARY_SIZE,
    pca_variance: float = PCA_VARIANCE,
) -> FusionHead:
    """Fit vocabulary, per-group PCA, scaler and the one-hidden-layer MLP on training cells."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.neural_network import MLPClassifier

    descriptor_sets = [dense_sift(g) for g in gray_images]
    pool = np.concatenate([d for d in descriptor_sets if len(d)])
    rng = np.random.default_rng(seed)
    if len(pool) > 40_000:  # the vocabulary needs a good sample, not every descriptor
        pool = pool[rng.choice(len(pool), 40_000, replace=False)]
    n_words = min(vocabulary_size, len(pool))
    vocabulary = KMeans(n_words, n_init=1, random_state=seed).fit(pool).cluster_centers_.astype(np.float32)
    groups = {
        "deep": np.asarray(deep, np.float32),
        "lbp": lbp_256(gray_images),
        "bof": bof_histograms(descriptor_sets, vocabulary),
    }
    pca = {}
    for name in GROUPS:
        fitted = PCA(n_components=pca_variance, svd_solver="full", random_state=seed).fit(groups[name])
        pca[name] = (fitted.mean_.astype(np.float32), fitted.components_.astype(np.float32))
    head = FusionHead(vocabulary=vocabulary, pca=pca, scaler=(np.zeros(1, np.float32), np.ones(1, np.float32)))
    raw = np.concatenate([(groups[n] - pca[n][0]) @ pca[n][1].T for n in GROUPS], axis=1)
    head.scaler = (raw.mean(0).astype(np.float32), (raw.std(0) + 1e-6).astype(np.float32))
    x = head.fused(groups)
    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation="relu",
        alpha=alpha,
        max_iter=600,
        random_state=seed,
        learning_rate_init=1e-3,
    )
    mlp.fit(x, targets)
    n_classes = int(targets.max()) + 1
    weight_out, bias_out = mlp.coefs_[1], mlp.intercepts_[1]
    if weight_out.shape[1] == 1:  # two classes: sklearn uses one logistic unit; softmax([0, z]) = [1-σ, σ]
        weight_out = np.concatenate([np.zeros_like(weight_out), weight_out], axis=1)
        bias_out = np.concatenate([np.zeros_like(bias_out), bias_out])
    if list(mlp.classes_) != list(range(n_classes)):  # a class missing from this training split
        full_w = np.zeros((weight_out.shape[0], n_classes), np.float32)
        full_b = np.full(n_classes, -30.0, np.float32)
        full_w[:, mlp.classes_] = weight_out
        full_b[mlp.classes_] = bias_out
        weight_out, bias_out = full_w, full_b
    head.layers = [
        (mlp.coefs_[0].astype(np.float32), mlp.intercepts_[0].astype(np.float32)),
        (np.asarray(weight_out, np.float32), np.asarray(bias_out, np.float32)),
    ]
    return head
