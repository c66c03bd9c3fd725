"""The Bethesda classifier: cell descriptors of a window centred on the nucleus, in gradient-boosted trees.

It reads what a cytologist reads: the nucleus the detector found (size, shape, stain, chromatin texture)
and the cytoplasm of its cell around it, in a window at the image's own resolution (CRIC's cell crops are
100 px around the nucleus; ours 96). The mask of each crop is the detection's own (its nucleus and its
cell), so training and inference describe a cell the same way. Outputs the six Bethesda classes plus
:data:`~napari_cervix.classes.NOT_SQUAMOUS` for detections that are no squamous cell (leukocytes,
debris), so those stay out of review. Trained on CRIC Cervix's graded cells as the detector finds them
(``grading/cric_cells.py``).

A cell is read in its field's context as well (``field_context``, :mod:`~napari_cervix.grading.context`):
its descriptors minus the median of the field's detections that look like its normal intermediate cells,
as the Bethesda criteria compare a nucleus with the smear's normal intermediate nuclei; all of an image's
cells are therefore graded together (:meth:`cell_parts` batch by batch, then one :meth:`grade`).

Two sets of trees share the descriptors: six-plus-one-class trees say *which* grade, binary trees trained for
abnormal vs not say *whether* (on CRIC's folds the binary ranking had the higher AUC: 0.904 against 0.895);
the class probabilities are scaled so the abnormal ones sum to the binary ``p_abnormal``. Since session 22
the binary trees' log-odds are averaged with a regularized linear model's on the same features
(``linear_weight``, :mod:`~napari_cervix.grading.linear`): the trees alone rank the low-scoring abnormal
tail, which sets the operating point, worse.

Why trees on descriptors and no CNN: on this project's 2 CPU cores a CNN of the Herlev classifiers' size
takes ~5 min an epoch on CRIC's 5,600 training cells (measured), too slow for field-grouped 5-fold
cross-validation; the descriptors are computed once per cell and the trees fit in seconds. The
binary probability is calibrated on out-of-fold predictions (Platt scaling, the card's ``calibration``), and
the card's ``threshold`` on ``p_abnormal`` is the operating point chosen there for the target recall.
"""

from __future__ import annotations

import numpy as np

from .base import ClassifierKind


class BethesdaBoost(ClassifierKind):
    name = "bethesda_boost"
    task = "grading"
    description = (
        "descriptors of a nucleus-centred window (stain, N/C geometry, chromatin texture) in boosted trees, "
        "whether abnormal averaged with a linear model: six Bethesda classes + not a squamous cell"
    )
    crop = "nucleus"  # a window centred on the nucleus at the image's resolution, not the cell's box resized
    has_network = False
    needs_masks = True  # the detection's own nucleus and cell, cut to the window
    uses_given_nuclei = True
    recipe = {
        "size": 96,  # window (px at CRIC's resolution) around the nucleus centre
        "channels": 3,
        "class_balance": 0.5,
        "boost_iterations": 200,
        "boost_learning_rate": 0.1,
        "boost_leaves": 15,
        "boost_max_features": 0.5,
        "target_recall": 0.95,
        "tta": 1,
        # Another lab's colors (grading/recolor.py): crops white-balanced by the field's glass, and the trees
        # trained on each field as it is plus two copies recolored as another stain and light. Each cell
        # read relative to its field's normal-intermediate-looking cells too (grading/context.py), as the
        # Bethesda criteria read it.
        # The binary trees' abnormal logit averaged with a linear model's on the same features
        # (grading/linear.py): out of fold it ranks the low-scoring abnormal tail better than either.
        "extra": {
            "white_balance": True,
            "recolored_copies": 2,
            "field_context": "intermediate",
            "linear_weight": 0.5,
            "linear_strength": 0.05,
        },
    }

    def output_space(self):
        from ..classes import BETHESDA_ABNORMAL
        from ..grading.cric_cells import OUTPUT_CLASSES

        return list(OUTPUT_CLASSES), None, list(BETHESDA_ABNORMAL)

    def model_config(self, config) -> dict:
        from ..cells.boosting import boost_settings
        from ..grading.context import reference_name

        return {
            "crop": self.crop,
            "class_balance": config.class_balance,
            "boost": boost_settings(config),
            # Crops scaled so the field's glass is white (grading/recolor.py), in training and at inference.
            "white_balance": bool(config.extra.get("white_balance", False)),
            # Descriptors relative to the field's reference cells, by name (grading/context.py; False: none);
            # the typical reference is in the weights.
            "field_context": reference_name(config.extra.get("field_context")) or False,
            # Weight of the linear abnormal score in the abnormal logit (grading/linear.py); 0: trees alone.
            "linear_weight": float(config.extra.get("linear_weight", 0.0)),
        }

    def load_parts(self, tensors: dict) -> dict:
        from ..grading.trees import GradingTrees

        return {"boost": GradingTrees.from_arrays({k: v.numpy() for k, v in tensors.items()})}

    def predict(self, classifier, crops, masks, mask_fn=None):
        """Probabilities of the cells of one field (or slide tile): all of them at once, since a grader with a
        field context reads each cell relative to the others (see :meth:`grade`)."""
        return self.grade(classifier, self.cell_parts(classifier, crops, masks))

    def cell_parts(self, classifier, crops, masks) -> dict[str, np.ndarray]:
        """What grading needs of each cell of a batch of windows (the slow part, run batch by batch with
        progress): its descriptors; concatenated over all of the field's batches they go to :meth:`grade`."""
        from ..cells.descriptors import crop_descriptors, onehot_to_semantic

        if masks is None:
            raise ValueError("the Bethesda classifier needs each crop's nucleus/cell mask (N × 2 × S × S)")
        return {"descriptors": crop_descriptors(crops, onehot_to_semantic(masks))}

    def grade(self, classifier, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities of all of a field's cells from their :meth:`cell_parts`."""
        return self.probabilities(classifier, *self.grade_parts(classifier, parts["descriptors"]))

    def grade_parts(self, classifier, descriptors, crops=None, masks=None) -> tuple[np.ndarray, np.ndarray]:
        """(class shares N × classes, uncalibrated abnormal logit N) of one field's cells given by their
        descriptors (and, for kinds with a CNN, their crops and masks): what :meth:`probabilities`
        calibrates. The cross-validation calls it on each field's cached descriptors, so training and
        inference share one path."""
        from ..grading.context import reference_name

        config = classifier.model_config
        return classifier.boost.parts(
            descriptors, reference_name(config.get("field_context")), float(config.get("linear_weight", 0.0))
        )

    def probabilities(self, classifier, shares, logit, calibration=None) -> np.ndarray:
        """Class probabilities from :meth:`grade_parts`: the abnormal classes sum to the calibrated
        P(abnormal); ``calibration`` (slope, intercept) defaults to the card's."""
        from ..grading.trees import scaled_to_abnormal

        if calibration is None:
            stored = classifier.metadata.get("calibration", {})
            calibration = (float(stored.get("slope", 1.0)), float(stored.get("intercept", 0.0)))
        return scaled_to_abnormal(shares, logit, classifier.abnormal_mask, calibration)

    def fit(self, config, classifier, crops, targets, mask_fn=None, masks=None) -> dict:
        """Trees on the crops' descriptors, without a field context: the crops come from no one field
        (``grading/train.py`` fits the shipped grader field by field)."""
        from ..cells.descriptors import crop_descriptors, onehot_to_semantic
        from ..grading.trees import fit_grading_trees

        _, _, abnormal = self.output_space()
        is_abnormal = np.array([c in abnormal for c in classifier.classes])
        descriptors = crop_descriptors(crops, onehot_to_semantic(masks))
        return {"boost": fit_grading_trees(config, descriptors, targets, is_abnormal)}
