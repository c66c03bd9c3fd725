"""Descriptor boost: cell descriptors (stain color, N/C geometry, texture) in gradient-boosted trees,
averaged with an LD/ResNet.

It describes 128 px crops and keeps a gray 96 px LD/ResNet beside them even for color input: on Herlev the
color CNN added nothing the color descriptors did not already hold (README).
"""

from __future__ import annotations

import numpy as np

from .base import ClassifierKind


class DescriptorBoost(ClassifierKind):
    name = "descriptor_boost"
    description = (
        "cell descriptors (stain color, N/C geometry, texture) in gradient-boosted trees, averaged with an LD/ResNet"
    )
    needs_masks = True
    # Descriptors measure the nucleus the way they were trained to, so the N/C ratio and nucleus color mean
    # the same at inference as in training: given nuclei do not replace that mask source.
    uses_given_nuclei = False
    recipe = {"size": 128, "network_size": 96, "network_channels": 1, "epochs": 120}

    def model_config(self, config) -> dict:
        from ..cells.boosting import boost_settings

        return {
            "network_size": config.network_size or config.size,
            "network_channels": config.network_channels or config.channels,
            "cnn_weight": config.cnn_weight,
            "boost": boost_settings(config),
        }

    def load_parts(self, tensors: dict) -> dict:
        from ..cells.boosting import BoostedTrees

        return {"boost": BoostedTrees.from_arrays({k: v.numpy() for k, v in tensors.items() if k.startswith("boost.")})}

    def predict(self, classifier, crops, masks, mask_fn=None):
        import torch

        from ..cells.descriptors import crop_descriptors, masks_for_crops, onehot_to_semantic

        if masks is None:
            masks = masks_for_crops(crops, mask_fn)
        trees = classifier.boost.predict_proba(crop_descriptors(crops, onehot_to_semantic(masks)))
        cnn = classifier._run(lambda x, m: torch.softmax(classifier.network(x)[0], 1), crops, None)
        weight = float(classifier.model_config.get("cnn_weight", 0.5))
        return (weight * cnn + (1 - weight) * trees).astype(np.float32)

    def fit(self, config, classifier, crops, targets, mask_fn=None, masks=None) -> dict:
        from ..cells.boosting import fit_boosted_trees
        from ..cells.descriptors import crop_descriptors, masks_for_crops, onehot_to_semantic

        semantic = onehot_to_semantic(masks if masks is not None else masks_for_crops(crops, mask_fn))
        return {"boost": fit_boosted_trees(config, crop_descriptors(crops, semantic), targets)}
