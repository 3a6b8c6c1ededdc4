"""Post-processing of frame-level scores into sound events."""

from sed_lightning.postprocessing.events import (
    DECODER_KEYS,
    EVENT_COLUMNS,
    TUNE_METHODS,
    PostProcessor,
    decoder_settings,
    empty_event_table,
    resolve_per_class,
    window_in_frames,
)

__all__ = [
    "DECODER_KEYS",
    "EVENT_COLUMNS",
    "TUNE_METHODS",
    "PostProcessor",
    "decoder_settings",
    "empty_event_table",
    "resolve_per_class",
    "window_in_frames",
]
