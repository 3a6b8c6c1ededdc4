"""Label texts and the Transformer label classifier that turns them into label features.

Every class name gives several texts by template (``door_slam`` -> "the sound of door
slam", ...). A small Transformer classifier learns to tell the classes apart from those
texts (class = target); the label feature of a class is the classifier's penultimate
layer (mean-pooled encoder output) averaged over that class's texts. Training takes
seconds on CPU and is deterministic from the seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "DEFAULT_TEMPLATES",
    "LabelFeatures",
    "TextClassifier",
    "WordTokenizer",
    "label_phrase",
    "label_texts",
    "load_label_features",
    "save_label_features",
    "text_label_features",
    "train_text_classifier",
]

DEFAULT_TEMPLATES = (
    "the sound of {label}",
    "a recording of {label}",
    "{label}",
    "a {label} sound",
    "an audio clip of {label}",
    "there is {label} in the background",
)
PAD, UNK = 0, 1


def label_phrase(name: str) -> str:
    """The words of a class name.

    Example:
        >>> label_phrase("door_slam"), label_phrase("Keys-Drop")
        ('door slam', 'keys drop')
    """
    return " ".join(re.split(r"[\s_\-]+", name.strip().lower()))


def label_texts(class_names: Sequence[str], templates: Sequence[str]) -> dict[str, list[str]]:
    """The texts of every class: one per template, ``{label}`` replaced by its phrase.

    Example:
        >>> label_texts(["door_slam"], ["the sound of {label}", "{label}"])
        {'door_slam': ['the sound of door slam', 'door slam']}
    """
    bad = [t for t in templates if "{label}" not in t]
    if not templates or bad:
        raise ValueError(f"every label template needs a '{{label}}' placeholder, got {bad}")
    phrases = [label_phrase(c) for c in class_names]
    if len(set(phrases)) != len(phrases):
        raise ValueError(f"class names give the same label text: {phrases}")
    return {
        c: [t.format(label=p) for t in templates] for c, p in zip(class_names, phrases, strict=True)
    }


class WordTokenizer:
    """Lower-case words to ids over the vocabulary of the texts it is built from.

    Id 0 pads, id 1 is an unknown word.

    Example:
        >>> tok = WordTokenizer(["a door", "a knock"])
        >>> tok.vocab
        {'<pad>': 0, '<unk>': 1, 'a': 2, 'door': 3, 'knock': 4}
        >>> tok.encode(["door", "a cat"])
        (tensor([[3, 0],
                [2, 1]]), tensor([[ True, False],
                [ True,  True]]))
    """

    def __init__(self, texts: Sequence[str]) -> None:
        words = sorted({w for t in texts for w in self.split(t)})
        self.vocab = {"<pad>": PAD, "<unk>": UNK} | {w: i + 2 for i, w in enumerate(words)}
        self.max_len = max(len(self.split(t)) for t in texts)

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and a mask of real tokens, right-padded to the longest text.

        Shape:
            - output: ``(n_texts, length)`` ids (long) and mask (bool)
        """
        rows = [[self.vocab.get(w, UNK) for w in self.split(t)] or [UNK] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [PAD] * (length - len(r)) for r in rows])
        return ids, ids != PAD


class TextClassifier(nn.Module):
    """Token + position embeddings, ``nn.TransformerEncoder``, masked mean pooling, linear head.

    Args:
        vocab_size: number of token ids.
        n_classes: number of classes.
        max_len: longest text (positions).
        d_model: embedding width (= the label feature size).
        num_layers, num_heads, ffn_dim: encoder sizes.

    Shape:
        - ids, mask: ``(n_texts, length)``
        - features: ``(n_texts, d_model)``; forward: ``(n_texts, n_classes)`` logits
    """

    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        max_len: int,
        d_model: int = 32,
        num_layers: int = 1,
        num_heads: int = 2,
        ffn_dim: int = 64,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.position = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, ffn_dim, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of the encoder output over the real tokens (the penultimate layer)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        hidden = self.encoder(
            self.embedding(ids) + self.position(positions), src_key_padding_mask=~mask
        )
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids, mask))


def _dataset(
    texts: Mapping[str, Sequence[str]], tokenizer: WordTokenizer
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    flat = [(t, i) for i, class_texts in enumerate(texts.values()) for t in class_texts]
    ids, mask = tokenizer.encode([t for t, _ in flat])
    return ids, mask, torch.tensor([i for _, i in flat])


def train_text_classifier(
    texts: Mapping[str, Sequence[str]],
    d_model: int = 32,
    num_layers: int = 1,
    num_heads: int = 2,
    ffn_dim: int = 64,
    epochs: int = 100,
    lr: float = 3e-3,
    seed: int = 0,
) -> tuple[TextClassifier, WordTokenizer]:
    """Train the classifier on every text of every class (full batch, Adam, cross-entropy).

    The global random state is left untouched: the weights depend on ``seed`` only. Runs
    on one thread (see :func:`single_thread`).
    """
    tokenizer = WordTokenizer([t for class_texts in texts.values() for t in class_texts])
    ids, mask, targets = _dataset(texts, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TextClassifier(
            len(tokenizer.vocab),
            len(texts),
            tokenizer.max_len,
            d_model,
            num_layers,
            num_heads,
            ffn_dim,
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with single_thread():
        for _ in range(epochs):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(ids, mask), targets).backward()
            optimizer.step()
    return model.eval(), tokenizer


@torch.no_grad()
def text_accuracy(
    model: TextClassifier, tokenizer: WordTokenizer, texts: Mapping[str, Sequence[str]]
) -> float:
    """Share of the texts classified as their own class."""
    ids, mask, targets = _dataset(texts, tokenizer)
    return (model.eval()(ids, mask).argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def class_features(
    model: TextClassifier, tokenizer: WordTokenizer, texts: Mapping[str, Sequence[str]]
) -> torch.Tensor:
    """One label feature per class: the mean text feature over its texts.

    Shape:
        - output: ``(n_classes, d_model)``, classes in the order of ``texts``
    """
    model.eval()
    return torch.stack([model.features(*tokenizer.encode(t)).mean(dim=0) for t in texts.values()])


@dataclass
class LabelFeatures:
    """Label features ``(n_classes, dim)``, the texts they came from (empty when loaded from a
    file) and the text classifier's accuracy on those texts (``None`` when loaded)."""

    features: torch.Tensor
    texts: dict[str, list[str]]
    accuracy: float | None = None


def text_label_features(
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    seed: int = 0,
    **encoder: int | float,
) -> LabelFeatures:
    """Train the text classifier on the template texts and return the label features.

    ``encoder`` holds :func:`train_text_classifier`'s sizes, ``epochs`` and ``lr``. Runs on
    one thread (restored afterwards), so the result does not depend on the thread count.
    """
    texts = label_texts(class_names, templates)
    with single_thread():
        model, tokenizer = train_text_classifier(texts, seed=seed, **encoder)
        features = class_features(model, tokenizer, texts)
        return LabelFeatures(features, texts, text_accuracy(model, tokenizer, texts))


@contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread: the text model's tensors are tiny, threads only add overhead
    (several times slower on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_label_features(path: str | Path, class_names: Sequence[str]) -> LabelFeatures:
    """Label features from a ``.pt`` file: a ``(n_classes, dim)`` tensor in the order of
    ``class_names``, or a dict ``{"features": tensor, "class_names": [...]}`` (rows put in
    the order of ``class_names``), like :func:`save_label_features` writes."""
    path = Path(path)
    if path.suffix != ".pt" or not path.is_file():
        raise FileNotFoundError(f"no .pt file {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unsafe pickle, truncated or not a torch file: say which
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # torch colours its advice
        first = text.split(". ")[0].splitlines()[0] if text else type(err).__name__
        raise ValueError(
            f"{path}: not a tensor file torch loads with weights_only ({first})"
        ) from None
    if isinstance(saved, dict):
        if "features" not in saved:
            raise ValueError(f"{path}: a dict without 'features' (keys: {sorted(saved)})")
        features, names = saved["features"], saved.get("class_names")
    else:
        features, names = saved, None
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{path}: label features must be a tensor, got {type(features).__name__}")
    if names is not None:
        if sorted(names) != sorted(class_names):
            raise ValueError(f"{path}: features for classes {names}, the run has {class_names}")
        features = features[[list(names).index(c) for c in class_names]]
    if features.dim() != 2 or features.shape[0] != len(class_names):
        raise ValueError(
            f"{path}: expected label features (n_classes={len(class_names)}, dim), "
            f"got {tuple(features.shape)}"
        )
    return LabelFeatures(features.float(), {})


def save_label_features(
    out_dir: str | Path, label_features: LabelFeatures, class_names: Sequence[str]
) -> None:
    """Write ``label_features.pt`` (dict with ``features`` and ``class_names``) and
    ``label_texts.json`` (the texts per class and the classifier's accuracy)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"features": label_features.features.cpu(), "class_names": list(class_names)},
        out_dir / "label_features.pt",
    )
    texts = {"texts": label_features.texts, "accuracy": label_features.accuracy}
    (out_dir / "label_texts.json").write_text(json.dumps(texts, indent=2) + "\n")
