"""Evaluation settings: the single place where collars and PSDS parameters are defined.

Values follow the DCASE 2021-2023 Task 4 (DESED) evaluation:

* event-based F1 (sed_eval): 200 ms onset collar, offset collar ``max(200 ms, 20 % of length)``;
* segment-based F1 (sed_eval): 1 s segments;
* PSDS scenario 1: DTC = GTC = 0.7, no cross-trigger penalty, alpha_st = 1, max eFPR = 100/h;
* PSDS scenario 2: DTC = GTC = 0.1, CTTC = 0.3, alpha_ct = 0.5, alpha_st = 1, max eFPR = 100/h.

and, beside them, the DCASE 2016 Task 2 figures (``DCASE2016_EVENT_BASED`` /
``DCASE2016_SEGMENT_BASED``, read micro-averaged, i.e. sed_eval's "overall"):

* event-based F1 and error rate, onset only, 200 ms onset collar (offsets are not judged);
* segment-based error rate and F1 on 1 s segments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EventBasedSetting:
    """Parameters of ``sed_eval.sound_event.EventBasedMetrics``.

    ``empty_system_output_handling="zero_score"`` is what the DESED baseline uses: a class with
    reference events but no detections gets precision 0 (hence F1 0) instead of NaN.
    ``evaluate_offset=False`` judges onsets only (the DCASE 2016 Task 2 event-based metric).
    """

    t_collar: float = 0.2
    percentage_of_length: float = 0.2
    empty_system_output_handling: str | None = "zero_score"
    evaluate_onset: bool = True
    evaluate_offset: bool = True


@dataclass(frozen=True)
class SegmentBasedSetting:
    """Parameters of ``sed_eval.sound_event.SegmentBasedMetrics``.

    ``empty_system_output_handling="zero_score"`` (sed_eval's own option): a class with
    reference segments but no detected segments scores F1 0. sed_eval's default (``None``,
    which the DESED baseline keeps) gives such a class NaN, and the class then silently
    drops out of the macro average — a system that never detects a hard class would look
    better for it. Set ``None`` here to reproduce DESED-baseline numbers exactly.
    """

    time_resolution: float = 1.0
    empty_system_output_handling: str | None = "zero_score"


@dataclass(frozen=True)
class PSDSSetting:
    """Parameters of ``sed_scores_eval.intersection_based.psds``."""

    name: str
    dtc_threshold: float
    gtc_threshold: float
    cttc_threshold: float | None
    alpha_ct: float
    alpha_st: float
    max_efpr: float
    unit_of_time: str = "hour"

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``sed_scores_eval.intersection_based.psds``."""
        params = asdict(self)
        del params["name"]
        return params


EVENT_BASED = EventBasedSetting()
SEGMENT_BASED = SegmentBasedSetting()

PSDS1 = PSDSSetting(
    name="psds1",
    dtc_threshold=0.7,
    gtc_threshold=0.7,
    cttc_threshold=None,
    alpha_ct=0.0,
    alpha_st=1.0,
    max_efpr=100.0,
)
PSDS2 = PSDSSetting(
    name="psds2",
    dtc_threshold=0.1,
    gtc_threshold=0.1,
    cttc_threshold=0.3,
    alpha_ct=0.5,
    alpha_st=1.0,
    max_efpr=100.0,
)
PSDS_SETTINGS: dict[str, PSDSSetting] = {PSDS1.name: PSDS1, PSDS2.name: PSDS2}

# DCASE 2016 Task 2 (synthetic office sounds): onset-only event-based metrics with a 200 ms
# collar and segment-based metrics on 1 s segments, both reported overall (micro). The
# offset condition (``percentage_of_length``, sed_eval's default 0.5) is not evaluated.
# "zero_score" (as above): a system without any output scores F1 0, not NaN.
DCASE2016_EVENT_BASED = EventBasedSetting(
    t_collar=0.2, percentage_of_length=0.5, evaluate_onset=True, evaluate_offset=False
)
DCASE2016_SEGMENT_BASED = SegmentBasedSetting(time_resolution=1.0)
# Their names in metrics.json (after the stage prefix, e.g. ``test/dcase2016/onset_f1``).
DCASE2016_KEYS = (
    "dcase2016/onset_f1",
    "dcase2016/onset_er",
    "dcase2016/segment_er",
    "dcase2016/segment_f1",
)

__all__ = [
    "DCASE2016_EVENT_BASED",
    "DCASE2016_KEYS",
    "DCASE2016_SEGMENT_BASED",
    "EVENT_BASED",
    "PSDS1",
    "PSDS2",
    "PSDS_SETTINGS",
    "SEGMENT_BASED",
    "EventBasedSetting",
    "PSDSSetting",
    "SegmentBasedSetting",
]
