"""Post-processing of frame-level scores into sound events."""

from sed_lightning.postprocessing.events import (
    EVENT_COLUMNS,
    PostProcessor,
    empty_event_table,
    resolve_per_class,
    window_in_frames,
)

__all__ = [
    "EVENT_COLUMNS",
    "PostProcessor",
    "empty_event_table",
    "resolve_per_class",
    "window_in_frames",
]
