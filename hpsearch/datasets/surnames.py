"""Surname nationality: ``<root>/names/<Language>.txt``, one surname per line (the PyTorch tutorial data).

The tutorial data repeats many rows (Arabic.txt has 2,000 lines but 108 distinct names), so a random split
puts copies of training rows into the test set. Here exact (name, language) duplicates are dropped and the
split is made by distinct name: no name string appears in two splits.
"""

from __future__ import annotations

import hashlib
import random
import string
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hpsearch.datasets.batching import Split, tensorise
from hpsearch.datasets.download import data_root, fetch_zip_folder
from hpsearch.errors import DataError

ALPHABET = string.ascii_letters + " .,;'"
_INDEX = {ch: i + 1 for i, ch in enumerate(ALPHABET)}  # 0 is padding
URL = "https://download.pytorch.org/tutorial/data.zip"
FOLDER = "names"
# folder_digest of the 18 extracted <Language>.txt files of the tutorial archive: the download is used only
# if it holds exactly these bytes. (The archive's own hash would also cover its unrelated files.)
SHA256 = "52a211d0a2dca365612f9613d14e45c6674f77576fcd920475c00e87733f680e"


@dataclass(frozen=True)
class SurnameData:
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    fingerprint: str  # sha256 of the deduplicated rows, to tell which data a result came from

    vocab_size = len(ALPHABET) + 1

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def split(self, name: str) -> Split:
        return getattr(self, name)

    def to(self, device: torch.device | str) -> SurnameData:
        return replace(self, **{name: split.to(device) for name, split in self.splits().items()})


def fold_ascii(text: str) -> str:
    """Strip accents and keep only the alphabet: 'Ślusàrski' -> 'Slusarski'."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn" and c in _INDEX)


def encode(names: Iterable[str]) -> list[list[int]]:
    return [[_INDEX[c] for c in fold_ascii(name)] for name in names]


def locate(root: str | Path | None = None, download: bool = True) -> Path:
    """The folder of ``<Language>.txt`` files, downloading the tutorial data when it is absent."""
    folder = (data_root(root) / FOLDER).resolve()
    hint = (f"put the <Language>.txt files in {folder} (or point --data-dir / HPSEARCH_DATA at a folder "
            f"holding {FOLDER}/)")
    if not any(folder.glob("*.txt")):
        if not download or folder.is_dir():
            raise DataError(f"no surname files found: {hint}")
        fetch_zip_folder(URL, f"data/{FOLDER}", folder, hint, SHA256)
    return folder


def read_pairs(folder: Path) -> list[tuple[str, str]]:
    """Distinct (ASCII name, language) pairs, sorted; names that fold to nothing are dropped, and a file
    with no name left is an error (its language would silently vanish from the classes)."""
    pairs = set()
    for path in sorted(folder.glob("*.txt")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
        except OSError as exc:  # a folder named like a file, a dangling link, no permission
            raise DataError(f"{path}: cannot be read ({exc.strerror}); make it a text file of surnames or "
                            "remove it") from None
        names = [name for name in map(fold_ascii, lines) if name.strip()]
        if not names:
            raise DataError(f"{path}: no name in it has a letter of the alphabet ({ALPHABET!r}; accents are "
                            "stripped); remove the file or fill it with one surname per line")
        pairs.update((name, path.stem) for name in names)
    return sorted(pairs)


def split_by_name(pairs: list[tuple[str, str]], val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, list[tuple[str, str]]]:
    """Train/val/test by distinct name, stratified by language.

    A name listed under several languages is stratified under its rarest one, so the small classes keep
    their share of every split.
    """
    languages_of: dict[str, set[str]] = defaultdict(set)
    for name, language in pairs:
        languages_of[name].add(language)
    counts = Counter(language for _, language in pairs)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in sorted(languages_of):
        groups[min(languages_of[name], key=lambda lang: (counts[lang], lang))].append(name)
    rng = random.Random(seed)
    assigned: dict[str, str] = {}
    for language in sorted(groups):
        names = groups[language]
        rng.shuffle(names)
        n_test, n_val = round(len(names) * test_fraction), round(len(names) * val_fraction)
        for i, name in enumerate(names):
            assigned[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for pair in pairs:
        splits[assigned[pair[0]]].append(pair)
    return splits


def load(root: str | Path | None = None, *, val_fraction: float = 0.1, test_fraction: float = 0.1,
         split_seed: int = 0, download: bool = True) -> SurnameData:
    pairs = read_pairs(locate(root, download))
    classes = tuple(sorted({language for _, language in pairs}))
    if len(classes) < 2:
        raise DataError(f"surname data needs at least two <Language>.txt files with names, found {len(classes)}")
    label = {language: i for i, language in enumerate(classes)}
    parts = split_by_name(pairs, val_fraction, test_fraction, split_seed)
    if empty := [name for name, rows in parts.items() if not rows]:
        raise DataError(f"{len(pairs)} names are too few for a {' and '.join(empty)} split with the spec's "
                        f"[data] fractions (val {val_fraction}, test {test_fraction}); add names or raise the "
                        "fractions")
    splits = {name: tensorise(encode(n for n, _ in rows), [label[lang] for _, lang in rows])
              for name, rows in parts.items()}
    fingerprint = hashlib.sha256("\n".join(f"{n}\t{lang}" for n, lang in pairs).encode()).hexdigest()
    return SurnameData(classes=classes, fingerprint=fingerprint, **splits)
