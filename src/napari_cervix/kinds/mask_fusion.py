"""Mask + image fusion with GAP (paper 002, model 2): the CNN takes the crop and its nucleus/cytoplasm
masks, and predicts the Bethesda groups."""

from __future__ import annotations

import numpy as np

from .base import ClassifierKind


class MaskFusion(ClassifierKind):
    name = "mask_fusion"
    description = "image + nucleus/cytoplasm mask branches, GAP, dense (paper 002 model 2), Bethesda groups"
    needs_masks = True
    cnn_takes_masks = True

    def output_space(self):
        """The Bethesda groups (benign / L-SIL / H-SIL) as in paper 002. Herlev has no ASC-US cells, so
        that category cannot be learned from it and is not an output."""
        from ..classes import BETHESDA_CLASSES, HERLEV_ABNORMAL, HERLEV_CLASSES, HERLEV_TO_BETHESDA

        class_map = np.array([BETHESDA_CLASSES.index(HERLEV_TO_BETHESDA[c]) for c in HERLEV_CLASSES])
        abnormal = sorted({HERLEV_TO_BETHESDA[c] for c in HERLEV_ABNORMAL}, key=BETHESDA_CLASSES.index)
        return list(BETHESDA_CLASSES), class_map, abnormal

    def predict(self, classifier, crops, masks, mask_fn=None):
        import torch

        from ..cells.descriptors import masks_for_crops

        if masks is None:
            masks = masks_for_crops(crops, mask_fn)
        return classifier._run(lambda x, m: torch.softmax(classifier.network(x, m), 1), crops, masks)
