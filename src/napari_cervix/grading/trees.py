"""The Bethesda grader's two sets of boosted trees: which grade (multi-class) and whether abnormal (binary).

Stored as plain arrays (``boost.*`` and ``abnormal.*`` in the weights file, see
:class:`~napari_cervix.cells.boosting.BoostedTrees`); :meth:`GradingTrees.predict_proba` gives class
probabilities whose abnormal classes sum to the calibrated binary probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells.boosting import BoostedTrees, fit_boosted_trees


@dataclass
class GradingTrees:
    classes: BoostedTrees  # N × classes probabilities
    abnormal: BoostedTrees  # binary: P(abnormal)

    def abnormal_logit(self, descriptors: np.ndarray) -> np.ndarray:
        return self.abnormal.raw_scores(descriptors)[:, 0]

    def predict_proba(self, descriptors: np.ndarray, is_abnormal: np.ndarray, calibration=(1.0, 0.0)):
        """Class probabilities: the class trees' shares within the abnormal and within the other classes,
        scaled to the binary trees' calibrated P(abnormal) (see :func:`scaled_to_abnormal`)."""
        return scaled_to_abnormal(
            self.classes.predict_proba(descriptors), self.abnormal_logit(descriptors), is_abnormal, calibration
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {**self.classes.to_arrays("boost."), **self.abnormal.to_arrays("abnormal.")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GradingTrees:
        return cls(BoostedTrees.from_arrays(arrays, "boost."), BoostedTrees.from_arrays(arrays, "abnormal."))


def scaled_to_abnormal(shares: np.ndarray, logit: np.ndarray, is_abnormal: np.ndarray, calibration=(1.0, 0.0)):
    """Class probabilities whose abnormal classes sum to P(abnormal) = sigmoid(slope · logit + intercept):
    ``shares`` (N × classes) split the mass within the abnormal and within the other classes."""
    slope, intercept = calibration
    p_abnormal = 1.0 / (1.0 + np.exp(-(slope * np.asarray(logit, np.float64) + intercept)))
    out = np.empty(shares.shape, np.float64)
    for group, mass in ((is_abnormal, p_abnormal), (~is_abnormal, 1.0 - p_abnormal)):
        within = shares[:, group]
        out[:, group] = within / np.maximum(within.sum(axis=1, keepdims=True), 1e-12) * mass[:, None]
    return out.astype(np.float32)


def fit_grading_trees(config, descriptors: np.ndarray, targets: np.ndarray, is_abnormal: np.ndarray) -> GradingTrees:
    """Both sets of trees on the same descriptors (``targets``: output-class indices)."""
    binary = np.asarray(is_abnormal)[targets].astype(np.int64)
    return GradingTrees(fit_boosted_trees(config, descriptors, targets), fit_boosted_trees(config, descriptors, binary))


def fit_calibration(logits: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of Platt scaling: the logistic regression of ``positive`` on out-of-fold logits.
    A slope alone (a temperature) cannot undo the trees' bias from the rebalanced training classes."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6).fit(np.asarray(logits, np.float64).reshape(-1, 1), np.asarray(positive, bool))
    return float(model.coef_[0, 0]), float(model.intercept_[0])
