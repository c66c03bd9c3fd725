"""How closely two backends' instance results agree: the figures the torch backend is held to
(same count per class, mask IoU per matched instance, score difference), for tests and benchmarks."""

from __future__ import annotations

import numpy as np

from ...cellset import Masks


def _iou(a: Masks, i: int, b: Masks, j: int) -> float:
    box = np.minimum(a.boxes[i], b.boxes[j]).tolist()[:2] + np.maximum(a.boxes[i], b.boxes[j]).tolist()[2:]
    ma, mb = a.crop_in(i, box), b.crop_in(j, box)
    union = np.count_nonzero(ma | mb)
    return np.count_nonzero(ma & mb) / union if union else 1.0


def match_masks(a: Masks, b: Masks) -> list[tuple[int, int, float]]:
    """One-to-one matches (i in a, j in b, mask IoU): each mask of ``a`` by descending score takes the
    unmatched mask of ``b`` it overlaps most (boxes that do not meet are never compared)."""
    matches, free = [], set(range(len(b)))
    for i in np.argsort(-a.scores, kind="stable"):
        y0, x0, y1, x1 = a.boxes[i]
        best, best_iou = None, 0.0
        for j in free:
            by0, bx0, by1, bx1 = b.boxes[j]
            if by1 <= y0 or y1 <= by0 or bx1 <= x0 or x1 <= bx0:
                continue
            iou = _iou(a, int(i), b, j)
            if iou > best_iou:
                best, best_iou = j, iou
        if best is not None:
            free.discard(best)
            matches.append((int(i), best, best_iou))
    return matches


def agreement(a: dict[str, Masks], b: dict[str, Masks]) -> dict:
    """Agreement of two results given as class name → :class:`Masks` (e.g. cells and nuclei).

    ``count_equal``: every class has as many instances in both; ``unmatched``: instances of either side
    without a partner of the same class; ``min_iou``/``mean_iou`` over the matched pairs (1.0 when there are
    none); ``max_score_diff`` over the matched pairs.
    """
    ious, diffs, unmatched, equal = [], [], 0, True
    for name in sorted(set(a) | set(b)):
        ma, mb = a.get(name), b.get(name)
        na, nb = len(ma) if ma is not None else 0, len(mb) if mb is not None else 0
        equal &= na == nb
        pairs = match_masks(ma, mb) if na and nb else []
        unmatched += na + nb - 2 * len(pairs)
        ious += [iou for _, _, iou in pairs]
        diffs += [abs(float(ma.scores[i]) - float(mb.scores[j])) for i, j, _ in pairs]
    return {
        "count_equal": bool(equal),
        "unmatched": int(unmatched),
        "matched": len(ious),
        "min_iou": float(min(ious)) if ious else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else 1.0,
        "max_score_diff": float(max(diffs)) if diffs else 0.0,
    }


def result_agreement(a, b) -> dict:
    """:func:`agreement` of two :class:`~napari_cervix.instances.InstanceResult` (cells and nuclei)."""
    return agreement({"cell": a.cells.cells, "nucleus": a.nuclei}, {"cell": b.cells.cells, "nucleus": b.nuclei})


def tile_agreement(a, b, classes) -> dict:
    """:func:`agreement` of two ``predict_tile`` outputs (masks K×h×w, scores, labels)."""

    def by_class(masks, scores, labels):
        shape = masks.shape[1:]
        out = {}
        for k, name in enumerate(classes):
            chosen = labels == k
            out[name] = Masks.from_stack(masks[chosen], shape=shape, scores=scores[chosen])[0]
        return out

    return agreement(by_class(*a), by_class(*b))
