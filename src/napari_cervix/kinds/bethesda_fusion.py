"""The Bethesda classifier with a CNN beside the trees: a mask-fusion net (paper 002) on the same window.

The trees of :class:`~.bethesda.BethesdaBoost` read hand-made descriptors; the CNN reads the window's
pixels and the detection's nucleus and cell masks (image and mask branches, GAP, dense: paper 002's model
2) and sees what the descriptors summarize away (a koilocyte's perinuclear halo, chromatin granularity,
a crumpled nucleus). The two are averaged: the abnormal logit ``(1 − w) · trees + w · logit(CNN's
P(abnormal))`` is calibrated on out-of-fold predictions (Platt) into ``p_abnormal``, and the class
shares are averaged with the same weight. The CNN is small so field-grouped 5-fold CV runs on 2 CPU
cores: the 96 px window is area-resized to 64 px, one block per stage, 12 epochs in bfloat16 where the
CPU has it (~9 min per fold here).
"""

from __future__ import annotations

import numpy as np

from .bethesda import BethesdaBoost


class BethesdaFusion(BethesdaBoost):
    name = "bethesda_fusion"
    description = (
        "boosted trees on descriptors of a nucleus-centred window averaged with a mask-fusion CNN on the window "
        "and its nucleus/cell masks: six Bethesda classes + not a squamous cell"
    )
    has_network = True
    cnn_takes_masks = True
    recipe = {
        **BethesdaBoost.recipe,
        "network_size": 64,  # the CNN's input: the 96 px window area-resized
        "blocks": 1,
        "epochs": 12,
        "bf16": True,
        "cnn_weight": 0.7,  # of the CNN in the abnormal logit and the class shares
        "tta": 2,
        "extra": {},  # its CNN's cached windows are neither white-balanced nor recolored
    }

    def model_config(self, config) -> dict:
        return {**super().model_config(config), "network_size": config.network_size, "cnn_weight": config.cnn_weight}

    def cnn_shares(self, classifier, crops, masks) -> np.ndarray:
        """The CNN's class probabilities (N × classes) of the windows and their masks."""
        return classifier._run(lambda x, m: classifier.network(x, m).softmax(1), crops, masks)

    def cell_parts(self, classifier, crops, masks) -> dict[str, np.ndarray]:
        return {**super().cell_parts(classifier, crops, masks), "cnn": self.cnn_shares(classifier, crops, masks)}

    def grade(self, classifier, parts: dict[str, np.ndarray]) -> np.ndarray:
        return self.probabilities(classifier, *self.grade_parts(classifier, parts["descriptors"], cnn=parts["cnn"]))

    def grade_parts(self, classifier, descriptors, crops=None, masks=None, cnn=None):
        """As the trees' :meth:`~.bethesda.BethesdaBoost.grade_parts`, averaged with the CNN's class
        probabilities of the windows (``cnn``: already computed, else from ``crops`` and ``masks``)."""
        tree_shares, tree_logit = super().grade_parts(classifier, descriptors)
        cnn = self.cnn_shares(classifier, crops, masks) if cnn is None else cnn
        p_cnn = np.clip(cnn[:, classifier.abnormal_mask].sum(axis=1), 1e-6, 1 - 1e-6)
        weight = float(classifier.model_config.get("cnn_weight", 0.5))
        logit = (1 - weight) * tree_logit + weight * np.log(p_cnn / (1 - p_cnn))
        return (1 - weight) * tree_shares + weight * cnn, logit
