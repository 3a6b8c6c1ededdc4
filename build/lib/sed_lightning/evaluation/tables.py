"""Result-table helpers shared by the ablation report and the median-filter study (light:
no torch import, so the post-processing studies start in a second)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


def paired_ttest_p(a: Sequence[float], b: Sequence[float]) -> float:
    """p of scipy's paired t-test of ``a`` against ``b``; NaN with fewer than 2 pairs.

    >>> round(paired_ttest_p([0.5, 0.6, 0.7], [0.4, 0.45, 0.65]), 3)
    0.074
    >>> paired_ttest_p([0.5], [0.4])
    nan
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    if len(a) < 2:
        return float("nan")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # identical samples: scipy warns and returns NaN
        return float(stats.ttest_rel(a, b).pvalue)


def fmt_mean_std(mean: float, std: float) -> str:
    """``mean ± std`` with three decimals; the mean alone when the std is NaN (one value).

    >>> fmt_mean_std(0.5, 0.1), fmt_mean_std(0.5, float("nan"))
    ('0.500 ± 0.100', '0.500')
    """
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def fmt_cell(row: Mapping[str, Any], name: str) -> str:
    """``mean ± std (p=...)`` of metric ``name`` in a results row; the reference has no p.

    >>> fmt_cell({"f1_mean": 0.5, "f1_std": 0.1, "f1_p": 0.04, "reference": False}, "f1")
    '0.500 ± 0.100 (p=0.04)'
    """
    mean, std, p = row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_p"]
    text = fmt_mean_std(mean, std)
    if row["reference"]:
        return text
    return f"{text} (p={p:.3g})" if not math.isnan(p) else f"{text} (p n/a)"
