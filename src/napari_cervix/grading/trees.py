"""The Bethesda grader's two sets of boosted trees: which grade (multi-class) and whether abnormal (binary).

Stored as plain arrays (``boost.*`` and ``abnormal.*`` in the weights file, see
:class:`~napari_cervix.cells.boosting.BoostedTrees`, and ``context.typical`` for trees that read the
descriptors in their field's context, see :mod:`.context`); :meth:`GradingTrees.parts` gives the class
shares and the abnormal logit that :func:`scaled_to_abnormal` turns into class probabilities whose abnormal
classes sum to the calibrated binary probability. A grader may carry a linear abnormal score beside the
binary trees (``linear.*``, :mod:`.linear`); its abnormal logit is then the weighted mean of both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells.boosting import BoostedTrees, fit_boosted_trees
from .linear import LinearScore, fit_linear_score


@dataclass
class GradingTrees:
    classes: BoostedTrees  # N × classes probabilities
    abnormal: BoostedTrees  # binary: P(abnormal)
    typical: np.ndarray | None = None  # the training fields' typical reference; None: no field context
    linear: LinearScore | None = None  # a linear abnormal score on the same features; None: trees alone

    def features(self, descriptors: np.ndarray, reference: str | None = None) -> np.ndarray:
        """What the trees read of one field's detections (N × D descriptors): the descriptors, and for
        trees with a field context the same relative to the field's ``reference`` detections (the card's
        ``field_context``, see :func:`.context.reference_name`; :func:`.context.in_field_context`)."""
        if self.typical is None:
            return np.asarray(descriptors, np.float32)
        from .context import in_field_context

        if reference is None:
            raise ValueError("these trees read cells in their field's context: name the field reference")
        return in_field_context(descriptors, self.typical, reference)

    def parts(
        self, descriptors: np.ndarray, reference: str | None = None, linear_weight: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(class shares N × classes, uncalibrated abnormal logit N) of one field's detections (N × D
        descriptors: all of them, the field context is taken over them; ``reference``: see :meth:`features`).
        With a :attr:`linear` score the logit is ``(1 − linear_weight) · trees + linear_weight · linear``
        (``linear_weight``: the card's, see the kind's ``model_config``)."""
        features = self.features(descriptors, reference)
        logit = self.abnormal.raw_scores(features)[:, 0]
        if self.linear is not None:
            if linear_weight is None:
                raise ValueError(
                    "these trees carry a linear abnormal score: give its weight (the card's linear_weight)"
                )
            logit = (1.0 - linear_weight) * logit + linear_weight * self.linear.logit(features)
        return self.classes.predict_proba(features), logit

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {**self.classes.to_arrays("boost."), **self.abnormal.to_arrays("abnormal.")}
        if self.typical is not None:
            arrays["context.typical"] = np.asarray(self.typical, np.float32)
        if self.linear is not None:
            arrays.update(self.linear.to_arrays())
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GradingTrees:
        typical = arrays.get("context.typical")
        return cls(
            BoostedTrees.from_arrays(arrays, "boost."),
            BoostedTrees.from_arrays(arrays, "abnormal."),
            None if typical is None else np.asarray(typical, np.float32),
            LinearScore.from_arrays(arrays),
        )


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


def fit_grading_trees(
    config, features: np.ndarray, targets: np.ndarray, is_abnormal: np.ndarray, typical: np.ndarray | None = None
) -> GradingTrees:
    """Both sets of trees on the same features (``targets``: output-class indices); ``features`` are what
    :meth:`GradingTrees.features` gives of each field (in their field's context when ``typical`` is given).
    A recipe with ``extra["linear_weight"]`` fits the linear abnormal score too (:mod:`.linear`, inverse
    regularization strength ``extra["linear_strength"]``)."""
    binary = np.asarray(is_abnormal)[targets].astype(np.int64)
    linear = None
    if config.extra.get("linear_weight"):
        linear = fit_linear_score(features, binary, float(config.extra.get("linear_strength", 0.05)))
    return GradingTrees(
        fit_boosted_trees(config, features, targets), fit_boosted_trees(config, features, binary), typical, linear
    )


def fit_calibration(logits: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of Platt scaling: the logistic regression of ``positive`` on out-of-fold logits.
    A slope alone (a temperature) cannot undo the trees' bias from the rebalanced training classes."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6).fit(np.asarray(logits, np.float64).reshape(-1, 1), np.asarray(positive, bool))
    return float(model.coef_[0, 0]), float(model.intercept_[0])
