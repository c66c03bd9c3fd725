"""Class vocabularies shared by readers, models, metrics and widgets (one spelling per class)."""

from __future__ import annotations

from .geometry import SEMANTIC_CLASSES

#: Instance categories, in COCO category-id order (id = index + 1).
INSTANCE_CLASSES = ("cell", "nucleus")

#: Herlev single-cell classes: the dataset's folder names, in the order used for label indices.
HERLEV_CLASSES = (
    "normal_superficiel",  # sic: the dataset's own folder spelling
    "normal_intermediate",
    "normal_columnar",
    "light_dysplastic",
    "moderate_dysplastic",
    "severe_dysplastic",
    "carcinoma_in_situ",
)
HERLEV_NORMAL = HERLEV_CLASSES[:3]
#: The positive class of the usual Herlev normal-vs-abnormal split.
HERLEV_ABNORMAL = HERLEV_CLASSES[3:]

#: Bethesda-system grouping of the Herlev classes (squamous intraepithelial lesion grades).
BETHESDA_CLASSES = ("benign", "L-SIL", "H-SIL")
HERLEV_TO_BETHESDA = {
    "normal_superficiel": "benign",
    "normal_intermediate": "benign",
    "normal_columnar": "benign",
    "light_dysplastic": "L-SIL",
    "moderate_dysplastic": "H-SIL",
    "severe_dysplastic": "H-SIL",
    "carcinoma_in_situ": "H-SIL",
}


#: The Bethesda System's squamous-cell classes, least to most severe (CRIC Cervix's classes, short names).
BETHESDA_GRADES = ("NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC")
BETHESDA_ABNORMAL = BETHESDA_GRADES[1:]
#: The classes a cytologist reports as high-grade-suspicious (field triage's "any high grade").
BETHESDA_HIGH_GRADE = ("ASC-H", "HSIL", "SCC")
#: The Bethesda classifier's extra output for a detection that is no squamous cell (leukocyte, debris, clump).
NOT_SQUAMOUS = "not_squamous"


def to_bethesda(herlev_class: str) -> str:
    """Bethesda group of one Herlev class name."""
    try:
        return HERLEV_TO_BETHESDA[herlev_class]
    except KeyError:
        raise ValueError(
            f"unknown Herlev class {herlev_class!r}; expected one of {', '.join(HERLEV_CLASSES)}"
        ) from None


__all__ = [
    "SEMANTIC_CLASSES",
    "INSTANCE_CLASSES",
    "HERLEV_CLASSES",
    "HERLEV_NORMAL",
    "HERLEV_ABNORMAL",
    "BETHESDA_CLASSES",
    "HERLEV_TO_BETHESDA",
    "BETHESDA_GRADES",
    "BETHESDA_ABNORMAL",
    "BETHESDA_HIGH_GRADE",
    "NOT_SQUAMOUS",
    "to_bethesda",
]
