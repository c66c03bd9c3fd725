"""Nucleus pseudo-masks from points, on generated stained fields with known nuclei."""

import numpy as np
from scipy import ndimage as ndi

from napari_cervix.pseudo_labels import (
    NUCLEUS_RADIUS,
    complete_nuclei,
    hematoxylin,
    nearest_nucleus_cells,
    nuclear_stain,
    point_nuclei,
    point_training_target,
)
from napari_cervix.semantic.losses import IGNORE, NOT_NUCLEUS, NUCLEUS


def stained_field(shape, nuclei, seed=0):
    """RGB uint8 field composed in stain space: pale eosin cytoplasm, hematoxylin disks.

    ``nuclei``: (row, col, radius, hematoxylin density). Returns (image, label image of the disks).
    """
    from skimage.color import hed2rgb

    rng = np.random.default_rng(seed)
    hed = np.zeros((*shape, 3))
    hed[..., 1] = 0.02  # eosin-stained cytoplasm everywhere
    truth = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k, (row, col, radius, density) in enumerate(nuclei, start=1):
        disk = (yy - row) ** 2 + (xx - col) ** 2 <= radius**2
        hed[disk, 0] = density
        truth[disk & (truth == 0)] = k
    hed[..., 0] += rng.normal(0, 0.003, shape)
    image = (np.clip(hed2rgb(hed), 0, 1) * 255).astype(np.uint8)
    return image, truth


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_hematoxylin_is_high_on_nuclei_for_rgb_and_gray():
    image, truth = stained_field((80, 80), [(40, 40, 12, 0.08)])
    stain = hematoxylin(image)
    assert stain[truth > 0].mean() > stain[truth == 0].mean() + 0.02
    gray = hematoxylin(np.where(truth > 0, 60, 200).astype(np.uint8))
    np.testing.assert_allclose(gray[truth > 0], 1 - 60 / 255, rtol=1e-6)
    np.testing.assert_allclose(gray[truth == 0], 1 - 200 / 255, rtol=1e-6)


def test_small_large_and_pale_nuclei_are_recovered_from_their_centres():
    # Small dark (normal), large hyperchromatic, large pale (the abnormal ones that matter most).
    nuclei = [(40, 40, 7, 0.10), (60, 150, 30, 0.12), (170, 70, 34, 0.045), (180, 190, 15, 0.07)]
    image, truth = stained_field((240, 240), nuclei)
    points = [(r, c) for r, c, _, _ in nuclei]
    labels = point_nuclei(nuclear_stain(image), points)
    for k in range(1, len(nuclei) + 1):
        region = labels == k
        assert dice(region, truth == k) > 0.85, k
        assert ndi.label(region)[1] == 1  # one connected nucleus
        assert region[points[k - 1]]


def test_touching_annotated_nuclei_are_split_and_off_centre_points_work():
    nuclei = [(50, 40, 14, 0.09), (50, 68, 14, 0.09)]  # disks overlap by a few pixels
    image, truth = stained_field((100, 110), nuclei)
    labels = point_nuclei(nuclear_stain(image), [(52, 37), (48, 71)])
    for k in (1, 2):
        assert dice(labels == k, truth == k) > 0.8
    assert not np.any((labels == 1) & (labels == 2))


def test_no_contrast_gives_the_smallest_plausible_disk_and_points_outside_are_skipped():
    flat = np.full((60, 60, 3), 200, np.uint8)
    labels = point_nuclei(nuclear_stain(flat), [(30, 30), (-5, 10)])
    r_min = NUCLEUS_RADIUS[0]
    assert abs((labels == 1).sum() - np.pi * r_min**2) < 2 * np.pi * r_min
    assert not np.any(labels == 2)


def test_target_ignores_unannotated_nuclei_and_trusts_glass_and_rings():
    annotated, unannotated = (60, 60, 12, 0.09), (60, 180, 10, 0.09)
    image, truth = stained_field((120, 240), [annotated, unannotated])
    nuclei, target = point_training_target(image, [annotated[:2]])
    assert set(np.unique(target)) == {NUCLEUS, NOT_NUCLEUS, IGNORE}
    assert dice(nuclei, truth == 1) > 0.85
    assert np.all(target[nuclei] == NUCLEUS)
    # The unmarked nucleus and its surroundings are unknown, never "not nucleus".
    assert np.all(target[ndi.binary_dilation(truth == 2, iterations=3)] == IGNORE)
    # Just outside the annotated nucleus (beyond the uncertain edge) is known not nucleus.
    ring = ndi.binary_dilation(truth == 1, iterations=6) & ~ndi.binary_dilation(truth == 1, iterations=4)
    assert np.mean(target[ring] == NOT_NUCLEUS) > 0.9
    # Pale cytoplasm far from anything dark is known background.
    assert target[5, 120] == NOT_NUCLEUS and target[110, 5] == NOT_NUCLEUS


def test_segmented_nuclei_no_point_claims_join_the_point_nuclei_apart_from_each_other():
    points = np.zeros((60, 60), np.int32)
    points[10:20, 10:20] = 1  # an annotated nucleus
    points[20:30, 10:20] = 2  # touching it: another annotated nucleus
    segmented = np.zeros((60, 60), bool)
    segmented[9:31, 9:21] = True  # the segmenter's view of both, merged
    segmented[40:50, 40:50] = True  # a leukocyte nobody annotated
    segmented[40:44, 5:9] = True  # and another one
    labels = complete_nuclei(points, segmented)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    assert np.all(labels[40:50, 40:50][1:-1, 1:-1] == labels[45, 45]) and labels[45, 45] > 2
    assert labels[12:18, 12:18].min() == 1 and np.all(labels[9, 9:21] == 0)  # claimed: the points' masks
    # Kept apart: each instance is its own 8-connected component.
    assert ndi.label(labels > 0, structure=np.ones((3, 3)))[1] == 4


def test_each_nucleus_gets_the_foreground_nearest_it_within_the_radius():
    nuclei = np.zeros((40, 100), np.int32)
    nuclei[18:22, 18:22] = 1
    nuclei[18:22, 58:62] = 2
    foreground = np.zeros((40, 100), bool)
    foreground[5:35, 5:95] = True
    cells = nearest_nucleus_cells(foreground, nuclei, max_radius=25)
    assert cells[20, 30] == 1 and cells[20, 50] == 2  # split between the nuclei at mid-distance
    assert cells[20, 94] == 0  # beyond the radius of nucleus 2
    assert cells[2, 20] == 0 and np.all(cells[nuclei > 0] == nuclei[nuclei > 0])
    assert not nearest_nucleus_cells(foreground, np.zeros_like(nuclei), 10).any()
