"""Label-constrained fine-tuning (``+experiment=label_constraint``): label texts -> Transformer
text classifier -> one label feature per class; the SED model is fine-tuned with its loss plus
the ``label_constraint`` term, ``lambda * KL`` between its projected clip feature and the label
feature."""

from sed_lightning.labelconstraint.module import (
    ClipProjection,
    LabelConstraintTerm,
    add_label_constraint,
    build_label_constraint_module,
    load_weights,
)
from sed_lightning.labelconstraint.text import (
    LabelFeatures,
    TextClassifier,
    WordTokenizer,
    label_texts,
    load_label_features,
    save_label_features,
    text_label_features,
)

__all__ = [
    "ClipProjection",
    "LabelConstraintTerm",
    "LabelFeatures",
    "TextClassifier",
    "WordTokenizer",
    "add_label_constraint",
    "build_label_constraint_module",
    "label_texts",
    "load_label_features",
    "load_weights",
    "save_label_features",
    "text_label_features",
]
