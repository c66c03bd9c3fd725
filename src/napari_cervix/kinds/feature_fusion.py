"""Feature fusion (paper 004): LD/ResNet deep features + LBP-256 + dense-SIFT bag of features, PCA, MLP."""

from __future__ import annotations

import numpy as np

from .base import ClassifierKind


class FeatureFusion(ClassifierKind):
    name = "feature_fusion"
    description = "LD/ResNet deep features + LBP-256 + SIFT bag-of-features, PCA, MLP (paper 004)"

    def load_parts(self, tensors: dict) -> dict:
        from ..cells.fusion_features import FusionHead

        arrays = {k: v.float().numpy() for k, v in tensors.items() if k.startswith("fusion.")}
        return {"fusion_head": FusionHead.from_arrays(arrays)}

    def predict(self, classifier, crops, masks, mask_fn=None):
        deep = classifier.deep_features(crops)
        return classifier.fusion_head.predict_proba(deep, crops.mean(axis=1)).astype(np.float32)

    def fit(self, config, classifier, crops, targets, mask_fn=None, masks=None) -> dict:
        from ..cells.fusion_features import fit_fusion_head

        deep = classifier.deep_features(crops)
        head = fit_fusion_head(
            deep, crops.mean(axis=1), targets, seed=config.seed, hidden=config.fusion_hidden, alpha=config.fusion_alpha
        )
        return {"fusion_head": head}
