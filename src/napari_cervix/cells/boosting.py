"""Gradient-boosted trees stored as plain arrays (fitted with scikit-learn, predicted with numpy).

scikit-learn's models are only persistable by pickling, which the registry never does (loading a pickle
runs arbitrary code). A fitted :class:`~sklearn.ensemble.HistGradientBoostingClassifier` is just a list of
small binary trees, so :func:`trees_from_sklearn` flattens them into a few arrays (stored in the weights'
safetensors file) and :class:`BoostedTrees` evaluates them with vectorized numpy, giving the same
probabilities as scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FIELDS = ("feature", "threshold", "left", "right", "is_leaf", "missing_left", "value")


@dataclass
class BoostedTrees:
    """Flattened trees: node arrays (all trees concatenated), each tree's first node, class and baseline."""

    feature: np.ndarray  # int64, split feature of each node
    threshold: np.ndarray  # float64, go left when x <= threshold
    left: np.ndarray  # int64, children as indices *within* the node's tree
    right: np.ndarray
    is_leaf: np.ndarray  # bool
    missing_left: np.ndarray  # bool, where NaN goes
    value: np.ndarray  # float64, leaf value (learning rate already applied)
    tree_start: np.ndarray  # int64, index of each tree's root in the node arrays
    tree_class: np.ndarray  # int64, the output column each tree adds to
    baseline: np.ndarray  # float64, raw score before any tree (one per output column)
    n_features: int

    @property
    def n_classes(self) -> int:
        # A binary model has one output column (the log-odds of class 1).
        return 2 if len(self.baseline) == 1 else len(self.baseline)

    def raw_scores(self, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected N×{self.n_features} features, got {x.shape}")
        out = np.empty((len(x), len(self.baseline)), np.float64)
        starts = self.tree_start[None, :]
        for begin in range(0, len(x), chunk):
            rows = x[begin : begin + chunk]
            node = np.repeat(starts, len(rows), axis=0)
            sample = np.arange(len(rows))[:, None]
            while True:
                active = ~self.is_leaf[node]
                if not active.any():
                    break
                value = rows[sample, self.feature[node]]
                go_left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
                child = np.where(go_left, self.left[node], self.right[node]) + starts
                node = np.where(active, child, node)
            leaves = self.value[node]
            scores = np.repeat(self.baseline[None, :], len(rows), axis=0)
            for column in range(len(self.baseline)):
                scores[:, column] += leaves[:, self.tree_class == column].sum(axis=1)
            out[begin : begin + chunk] = scores
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw_scores(x)
        if raw.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.stack([1 - p, p], axis=1)
        raw -= raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)

    # ----------------------------------------------------------------------- storage
    def to_arrays(self, prefix: str = "boost.") -> dict[str, np.ndarray]:
        """Compact arrays: int32 indices, uint8 flags, float32 leaf values; thresholds stay float64 so every
        split decides exactly as it did in scikit-learn."""
        arrays = {name: getattr(self, name) for name in _FIELDS}
        for name in ("feature", "left", "right"):
            arrays[name] = arrays[name].astype(np.int32)
        arrays["is_leaf"] = arrays["is_leaf"].astype(np.uint8)
        arrays["missing_left"] = arrays["missing_left"].astype(np.uint8)
        arrays["value"] = arrays["value"].astype(np.float32)
        arrays.update(
            tree_start=self.tree_start,
            tree_class=self.tree_class,
            baseline=self.baseline,
            n_features=np.array([self.n_features], np.int64),
        )
        return {prefix + k: np.ascontiguousarray(v) for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "boost.") -> BoostedTrees:
        def get(key):
            return np.asarray(arrays[prefix + key])

        return cls(
            feature=get("feature").astype(np.int64),
            threshold=get("threshold").astype(np.float64),
            left=get("left").astype(np.int64),
            right=get("right").astype(np.int64),
            is_leaf=get("is_leaf").astype(bool),
            missing_left=get("missing_left").astype(bool),
            value=get("value").astype(np.float64),
            tree_start=get("tree_start").astype(np.int64),
            tree_class=get("tree_class").astype(np.int64),
            baseline=get("baseline").astype(np.float64),
            n_features=int(get("n_features")[0]),
        )


def trees_from_sklearn(model) -> BoostedTrees:
    """Flatten a fitted ``HistGradientBoostingClassifier`` (numerical features only)."""
    parts = {name: [] for name in _FIELDS}
    starts, classes, offset = [], [], 0
    for iteration in model._predictors:
        for column, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            parts["feature"].append(nodes["feature_idx"].astype(np.int64))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["left"].append(nodes["left"].astype(np.int64))
            parts["right"].append(nodes["right"].astype(np.int64))
            parts["is_leaf"].append(nodes["is_leaf"].astype(bool))
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            parts["value"].append(nodes["value"].astype(np.float64))
            starts.append(offset)
            classes.append(column)
            offset += len(nodes)
    flat = {name: np.concatenate(values) for name, values in parts.items()}
    return BoostedTrees(
        **flat,
        tree_start=np.array(starts, np.int64),
        tree_class=np.array(classes, np.int64),
        baseline=np.asarray(model._baseline_prediction, np.float64).ravel(),
        n_features=int(model.n_features_in_),
    )


def boost_settings(config) -> dict:
    """The trees' settings of a TrainConfig, as a card's ``model_config["boost"]`` stores them."""
    return {
        "iterations": config.boost_iterations,
        "learning_rate": config.boost_learning_rate,
        "leaves": config.boost_leaves,
        "max_features": config.boost_max_features,
    }


def _rebalanced(descriptors: np.ndarray, targets: np.ndarray, power: float):
    """Each class's rows repeated ≈ (largest class count / its count) ** power times.

    Repeating rows weighs the classes as sample weights would; scikit-learn's trees fit with sample
    weights ~18× slower (measured here with 1.9), repeated rows cost only their number.
    """
    counts = np.bincount(targets)
    repeats = np.where(counts > 0, np.round((counts.max() / np.maximum(counts, 1)) ** power), 0).astype(np.int64)
    index = np.repeat(np.arange(len(targets)), np.maximum(repeats[targets], 1))
    return descriptors[index], targets[index]


def fit_boosted_trees(config, descriptors: np.ndarray, targets: np.ndarray) -> BoostedTrees:
    """Gradient-boosted trees on cell descriptors (``config``: a TrainConfig's boost_* settings and seed),
    flattened for storage."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=config.boost_iterations,
        learning_rate=config.boost_learning_rate,
        max_leaf_nodes=config.boost_leaves,
        max_features=config.boost_max_features,
        early_stopping=False,
        random_state=config.seed,
    )
    if getattr(config, "class_balance", 0.0):
        descriptors, targets = _rebalanced(descriptors, targets, config.class_balance)
    model.fit(descriptors, targets)
    if list(model.classes_) != list(range(int(targets.max()) + 1)):
        raise ValueError("every class needs training cells for the boosted trees")
    return trees_from_sklearn(model)
