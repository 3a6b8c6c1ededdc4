"""Clip recipes: every random choice of one clip, drawn once and rendered bit for bit.

:func:`clip_streams` gives a clip its random streams; :class:`ClipMaker` draws a clip's
recipe from them and renders recipes into mixtures with their truth rows. Fixed sets
(:func:`~.synthesis.synthesize_set`) and sets rendered anew every epoch
(:mod:`~.online`) both make their clips here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sed_lightning.data.backgrounds import BackgroundBank
from sed_lightning.data.distractors import render_distractors
from sed_lightning.data.mixing import cut_pieces, draw_events, render_events
from sed_lightning.data.set_spec import BackgroundFn, SoundscapeConfig
from sed_lightning.data.sources import EventBank, EventSource
from sed_lightning.data.variation import apply_background_variation

__all__ = ["ClipMaker", "clip_streams"]


def clip_streams(entropy: Sequence[int]) -> tuple[np.random.Generator, ...]:
    """The five random streams of a clip: background, events, background choice,
    background variation, non-target events.

    ``clip_streams([seed, k])[:2]`` equal ``default_rng([seed, k]).spawn(2)`` (the
    streams of earlier versions), so sets without recorded backgrounds are unchanged; each
    stream is the same whatever number of streams follows it.
    """
    children = np.random.SeedSequence([int(e) for e in entropy]).spawn(5)
    return tuple(np.random.default_rng(c) for c in children)


class ClipMaker:
    """Draws a clip's recipe and renders recipes: the one place a soundscape is made.

    A recipe is a JSON-safe dict holding every random choice of one clip::

        {"entropy": [...], "background": {"kind": "procedural"} |
                                          {"kind": "recorded", "file": ..., "offset": ...},
         "events": [{"piece", "source", "source_onset", "start", "ebr_db", "variation"}],
         "distractors": [{"label", "start", "n", "ebr_db", "seed"}]}  # only when drawn

    :meth:`render` uses no randomness beyond what the recipe names (the procedural
    background is regenerated from the recipe's ``entropy``), so a recipe re-renders
    its clip bit for bit.

    Args:
        sources: the event sources the clips draw from, with their bank (for names).
        bank: the event bank.
        cfg: mixing configuration.
        background_fn: procedural background generator.
        backgrounds: recorded backgrounds (``None``: procedural only).
        background_split: split(s) of ``backgrounds`` this maker draws from.
    """

    def __init__(
        self,
        sources: Sequence[EventSource],
        bank: EventBank,
        cfg: SoundscapeConfig,
        background_fn: BackgroundFn,
        backgrounds: BackgroundBank | None = None,
        background_split: str | Sequence[str] = "train",
    ) -> None:
        if cfg.recorded_share > 0 and backgrounds is None:
            raise ValueError("recorded_share > 0 needs recorded backgrounds (backgrounds_dir)")
        self.sources, self.bank, self.cfg = list(sources), bank, cfg
        self.background_fn, self.backgrounds = background_fn, backgrounds
        self.background_split = background_split
        cfg.distractors.check_targets(bank.class_names)
        self.pieces = cut_pieces([(bank.load(s), s.label) for s in self.sources], cfg)
        # the varied pieces of the recipe drawn last (varying is the costly part; drawing
        # needs their lengths, so rendering that recipe next reuses them)
        self._drawn: tuple[list[dict], list[np.ndarray]] | None = None

    def draw(self, entropy: Sequence[int]) -> dict:
        """The recipe of the clip seeded by ``entropy`` (e.g. ``[seed, k]``)."""
        cfg = self.cfg
        _, event_rng, choice_rng, variation_rng, distractor_rng = clip_streams(entropy)
        background: dict = {"kind": "procedural"}
        if cfg.recorded_share > 0 and choice_rng.random() < cfg.recorded_share:
            name, offset = self.backgrounds.draw(self.background_split, cfg.n_samples, choice_rng)
            background = {"kind": "recorded", "file": name, "offset": offset}
        variation = cfg.background_variation.draw(
            variation_rng, recorded=background["kind"] == "recorded"
        )
        if variation:  # absent when off: recipes (and sets) without it are unchanged
            background["variation"] = variation
        events = draw_events(self.pieces, cfg, event_rng, None)
        self._drawn = (events, [e.pop("_audio") for e in events])  # reused by render
        sr = cfg.sample_rate
        for event in events:
            piece = self.pieces[event["piece"]]
            event["source"] = str(self.sources[piece.source].path.relative_to(self.bank.root))
            event["source_onset"] = piece.start / sr
        recipe = {"entropy": [int(e) for e in entropy], "background": background, "events": events}
        distractors = cfg.distractors.draw(distractor_rng, cfg.n_samples, cfg.sample_rate)
        if distractors:  # absent when none: recipes (and sets) without them are unchanged
            recipe["distractors"] = distractors
        return recipe

    def background(self, recipe: dict) -> np.ndarray:
        """The recipe's background. Shape: ``(cfg.n_samples,)``, ``float32``."""
        spec, n, sr = recipe["background"], self.cfg.n_samples, self.cfg.sample_rate

        def generated(n_samples: int = n) -> np.ndarray:
            bg_rng = clip_streams(recipe["entropy"])[0]
            audio = self.background_fn(n_samples / sr, bg_rng, sr)
            return np.asarray(audio, dtype=np.float32)[:n_samples]

        if spec["kind"] == "recorded":

            def piece(n_samples: int) -> np.ndarray:
                return self.backgrounds.piece(spec["file"], int(spec["offset"]), n_samples)

        else:
            piece = generated
        if not spec.get("variation"):
            return piece(n)
        return apply_background_variation(piece, spec["variation"], n, sr, generated)

    def render(self, recipe: dict) -> tuple[np.ndarray, list[tuple]]:
        """Render a recipe: the mixture and its truth rows.

        Returns:
            mixture ``(n_samples,)`` float32; rows ``(onset, offset, label, source,
            source_onset, source_offset, ebr_db)`` sorted by onset.
        """
        for event in recipe["events"]:
            if not 0 <= int(event["piece"]) < len(self.pieces):
                raise ValueError(f"recipe event {event} names a piece this bank does not have")
        drawn, self._drawn = self._drawn, None
        varied = drawn[1] if drawn is not None and drawn[0] is recipe["events"] else None
        background = self.background(recipe)
        unlabelled = None
        if recipe.get("distractors"):
            unlabelled = render_distractors(recipe["distractors"], background, self.cfg.sample_rate)
        mixture, placed = render_events(
            self.pieces, recipe["events"], background, self.cfg, varied, unlabelled
        )
        sr = self.cfg.sample_rate
        rows = []
        for p in placed:
            piece = self.pieces[p.piece]
            source = str(self.sources[piece.source].path.relative_to(self.bank.root))
            src_onset = piece.start / sr
            rows.append(
                (
                    p.start / sr,
                    p.stop / sr,
                    piece.label,
                    source,
                    src_onset,
                    src_onset + (p.stop - p.start) / sr,
                    round(p.ebr_db, 3),
                )
            )
        return mixture, rows
