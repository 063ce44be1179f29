"""IMDB data at full size: the first load (read 50,000 review files, tokenise, count the vocabulary, write the
cache) against a cached load, and the peak memory of a one-epoch trial of the built-in imdb spec.

No machine here has the real archive, so the corpus is generated in aclImdb's layout: 25,000 train and 25,000
test reviews of 50 to 1,000 words (uniform; the real ones average about 230 words), the words drawn from a
Zipf-like distribution over 60,000 made-up words, plus a few sentiment words per review. The page cache is
warm for both loads (the files were just written), which favours the first load: the real ratio is larger.

    python benchmarks/imdb_data.py                # loads, then one epoch of the spec's first trial (minutes)
    python benchmarks/imdb_data.py --largest      # also the memory of the space's largest model (a few batches)
    python benchmarks/imdb_data.py --reviews 2000 # a quick look
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENTIMENT = {"pos": ["great", "wonderful", "loved", "superb", "moving"],
             "neg": ["awful", "boring", "waste", "dull", "worst"]}

# The largest model the built-in imdb space can draw, in memory: every value is checked against the spec.
LARGEST = {"cell": "lstm", "implementation": "handwritten", "bidirectional": True, "num_layers": 2,
           "hidden_size": 128, "embedding_dim": 128, "head_size": 64, "pooling": "max", "batch_size": 128,
           "max_len": 512, "keep": "start", "optimizer": "adam", "lr": 1e-3}

MEASURE_LARGEST = """
import json, re, sys, psutil, torch, mlflow  # a worker has MLflow loaded too
from hpsearch.search.lookup import load
from hpsearch.training.classification import class_weights, train_epoch
from hpsearch.training.loop import make_optimizer
from hpsearch.training.registry import TASKS
torch.set_num_threads(1)
spec, task = load("imdb"), TASKS["imdb"]
data = task.load(sys.argv[1], spec.data)
loaded = psutil.Process().memory_info().rss
hp = task.hyperparams(**json.loads(sys.argv[2]))
model = task.build(hp, data)
train = data.train
longest = torch.argsort(train.lengths, descending=True)[: hp.batch_size]  # full-width batches: the peak
weights = class_weights(train.labels, 2, 0.0)
train_epoch(model, train, [longest] * 3, make_optimizer(hp, model.parameters()), 1.0, weights)
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())[1]) * 1024
print(json.dumps({"loaded": loaded, "peak": peak}))
"""


def write_corpus(root: Path, reviews: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = np.array(["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(60_000)])
    ranks = np.arange(1, len(words) + 1)
    probabilities = 1 / (ranks + 2.7)
    probabilities /= probabilities.sum()
    for part in ("train", "test"):
        for label in ("pos", "neg"):
            folder = root / "aclImdb" / part / label
            folder.mkdir(parents=True)
            lengths = rng.integers(50, 1001, size=reviews // 2)
            drawn = rng.choice(len(words), size=int(lengths.sum()), p=probabilities)
            for i, chunk in enumerate(np.split(words[drawn], np.cumsum(lengths)[:-1])):
                marked = [*chunk[:-3], *rng.choice(SENTIMENT[label], 3)]
                text = " ".join(marked).capitalize() + ".<br /><br />The end!"
                (folder / f"{i}_{rng.integers(1, 11)}.txt").write_text(text, encoding="utf-8")


def time_loads(root: Path) -> tuple[float, float]:
    from hpsearch.datasets import imdb

    start = time.perf_counter()
    first = imdb.load(root)
    built = time.perf_counter() - start
    start = time.perf_counter()
    cached = imdb.load(root)
    read = time.perf_counter() - start
    assert cached.fingerprint == first.fingerprint and len(cached.train) == len(first.train)
    tokens = sum(len(first.split(name).ids) for name in ("train", "val", "test"))
    print(f"corpus: {len(first.train)} train, {len(first.val)} val, {len(first.test)} test reviews, "
          f"{tokens / 1e6:.1f}M tokens, vocabulary {first.vocab_size}")
    return built, read


def peak_rss(command: list[str]) -> int:
    """A child's peak resident memory: its VmHWM (Linux), read until it exits. Not RUSAGE_CHILDREN: a child
    forked from this process starts with this process's pages counted."""
    child, peak = subprocess.Popen(command, stdout=subprocess.DEVNULL), 0
    while child.poll() is None:
        try:
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{child.pid}/status").read_text())[1]))
        except (OSError, TypeError):  # exited between poll and read
            pass
        time.sleep(0.1)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return peak * 1024


def one_epoch(root: Path, workdir: Path) -> None:
    """A one-trial, one-epoch `hpsearch run --study imdb` in a child process: its peak RSS and epoch time."""
    peak = peak_rss([sys.executable, "-m", "hpsearch", "run", "--study", "imdb", "--n-trials", "1", "--epochs", "1",
                     "--data-dir", str(root), "--workdir", str(workdir), "--quiet"])
    import optuna

    from hpsearch.studies import record
    trial = optuna.load_study(study_name="imdb", storage=f"sqlite:///{workdir / 'optuna.db'}").trials[0]
    done = record.read(trial)
    print(f"one-epoch trial of the imdb spec's first configuration ({done.hyperparams['cell']} "
          f"{done.hyperparams['hidden_size']}, max_len {done.hyperparams['max_len']}, batch "
          f"{done.hyperparams['batch_size']}): peak RSS {peak / 1e9:.2f} GB, epoch {done.epoch_seconds:.0f} s, "
          f"val accuracy {done.results['val_accuracy']:.3f} (generated reviews)")


def largest(root: Path) -> None:
    from hpsearch.search.lookup import load

    space = {p.name: p for p in load("imdb").space}
    assert all(name not in space or space[name].kind == "fixed" and space[name].value == value
               or space[name].admits(value) for name, value in LARGEST.items()), "LARGEST left the spec's space"
    out = subprocess.run([sys.executable, "-c", MEASURE_LARGEST, str(root), json.dumps(LARGEST)], check=True,
                         capture_output=True, text=True).stdout
    memory = json.loads(out)
    print(f"largest model of the space ({json.dumps(LARGEST)}): peak RSS {memory['peak'] / 1e9:.2f} GB, "
          f"{(memory['peak'] - memory['loaded']) / 1e9:.2f} GB above a worker that has loaded torch, MLflow and "
          "the data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=25_000, help="per archive folder (train, test)")
    parser.add_argument("--no-trial", action="store_true", help="only the loads")
    parser.add_argument("--largest", action="store_true", help="also the largest model's training memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        start = time.perf_counter()
        write_corpus(root, args.reviews)
        print(f"generated {2 * args.reviews} reviews in {time.perf_counter() - start:.0f} s")
        built, read = time_loads(root)
        print(f"first load {built:.2f} s, cached load {read:.3f} s: the cached load is {built / read:.0f}x faster")
        if not args.no_trial:
            one_epoch(root, Path(tmp) / "runs")
        if args.largest:
            largest(root)


if __name__ == "__main__":
    main()
