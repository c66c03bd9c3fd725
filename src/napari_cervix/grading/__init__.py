"""Bethesda grading of real Pap-smear cells: nucleus-centred crops, the CRIC training cells, and the grade
columns of a cell table. The classifier itself is a classifier kind (``kinds/bethesda.py``) trained by the
one cell-classifier trainer (``cells/training.py``); :func:`napari_cervix.field.analyze_field` is the one call
from a field to graded cells."""
