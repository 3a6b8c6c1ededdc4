"""Merging overlapping or touching events of one class into one event.

sed_eval and sed_scores_eval reject references in which two events of one class overlap;
dataset validation (:mod:`~.validation`) and evaluation merge them with these functions,
so the datasets and the scores see the same events.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

__all__ = ["Event", "merge_same_class", "merge_same_class_events"]

_EPS = 1e-9

#: ``(onset, offset, label)``.
Event = tuple[float, float, str]


def merge_same_class_events(events: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Merge overlapping or touching same-class events, per file, in a strong event table.

    Returns the merged table (sorted by filename, onset) and the files that had merges.
    sed_eval and sed_scores_eval reject such references; this is what the datasets do too.
    """
    rows, touched = [], []
    for filename, group in events.groupby("filename", sort=True):
        evs = [(r.onset, r.offset, r.event_label, i) for i, r in enumerate(group.itertuples())]
        merged, groups = merge_same_class(evs)
        rows.extend((filename, *ev) for ev in merged)
        if groups:
            touched.append(str(filename))
    table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    table.attrs.update(events.attrs)
    return table, touched


def merge_same_class(
    events: list[tuple[float, float, str, int]],
) -> tuple[list[Event], list[list[int]]]:
    """Merge overlapping or touching events of one class.

    Returns the events sorted by onset and, for every merged group, its lines.
    """
    by_label: dict[str, list[tuple[float, float, str, int]]] = defaultdict(list)
    for ev in events:
        by_label[ev[2]].append(ev)
    out: list[Event] = []
    groups: list[list[int]] = []
    for label, evs in by_label.items():
        evs.sort()
        cur_on, cur_off, lines = evs[0][0], evs[0][1], [evs[0][3]]
        for onset, offset, _, line in evs[1:]:
            if onset <= cur_off + _EPS:
                cur_off = max(cur_off, offset)
                lines.append(line)
                continue
            out.append((cur_on, cur_off, label))
            if len(lines) > 1:
                groups.append(sorted(lines))
            cur_on, cur_off, lines = onset, offset, [line]
        out.append((cur_on, cur_off, label))
        if len(lines) > 1:
            groups.append(sorted(lines))
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    groups.sort()
    return out, groups
