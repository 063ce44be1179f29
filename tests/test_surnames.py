from __future__ import annotations

import io
import zipfile

import pytest
import torch
from conftest import REAL_DATA

from hpsearch.datasets import surnames
from hpsearch.datasets.batching import ordered_batches, shuffled_batches, tensorise, uniform_batches
from hpsearch.datasets.download import folder_digest, safe_members
from hpsearch.errors import DataError


def test_fold_ascii_strips_accents_and_foreign_characters():
    assert surnames.fold_ascii("Ślusàrski") == "Slusarski"
    assert surnames.fold_ascii("Núñez-Ávila!") == "NunezAvila"
    assert surnames.fold_ascii("O'Neal St. John") == "O'Neal St. John"
    assert surnames.fold_ascii("李") == ""


def test_reading_drops_duplicates_and_names_that_fold_to_nothing(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "Polish.txt").write_text("Ślusarski\nSlusarski\nNowak\n\n李\n", encoding="utf-8")
    (folder / "Czech.txt").write_text("Nowak\n", encoding="utf-8")
    assert surnames.read_pairs(folder) == [("Nowak", "Czech"), ("Nowak", "Polish"), ("Slusarski", "Polish")]


def test_a_file_with_no_name_in_the_alphabet_is_one_clear_error(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "Polish.txt").write_text("Nowak\n", encoding="utf-8")
    (folder / "Chinese.txt").write_text("李\n王\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"Chinese.txt: no name in it has a letter of the alphabet"):
        surnames.read_pairs(folder)


def test_non_utf8_file_is_one_clear_error(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "German.txt").write_bytes("Müller\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"German.txt: not UTF-8 text .*save it as UTF-8"):
        surnames.read_pairs(folder)


def test_missing_data_says_where_to_put_it(tmp_path):
    (tmp_path / "names").mkdir()
    with pytest.raises(DataError, match=f"put the <Language>.txt files in {tmp_path / 'names'}"):
        surnames.locate(tmp_path)


def test_split_shares_no_name_and_keeps_every_language(data_root):
    pairs = surnames.read_pairs(data_root / "names")
    pairs.append(("Shared", "Alpha"))
    pairs.append(("Shared", "Beta"))
    parts = surnames.split_by_name(sorted(pairs), 0.2, 0.2, seed=3)
    names = {split: {n for n, _ in rows} for split, rows in parts.items()}
    assert not names["train"] & names["val"] and not names["train"] & names["test"] and not names["val"] & names["test"]
    assert sum(len(rows) for rows in parts.values()) == len(pairs)
    for rows in parts.values():
        assert {lang for _, lang in rows} == {"Alpha", "Beta", "Gamma"}
    assert parts == surnames.split_by_name(sorted(pairs), 0.2, 0.2, seed=3)


def test_load_tensorises_every_split(data_root):
    data = surnames.load(data_root, val_fraction=0.2, test_fraction=0.2, split_seed=0)
    assert data.classes == ("Alpha", "Beta", "Gamma")
    assert len(data.train) + len(data.val) + len(data.test) == 120  # 3 x 40 names, the 5 repeats dropped
    for split in data.splits().values():
        assert split.tokens.shape == (len(split), int(split.lengths.max()))
        padding = torch.arange(split.tokens.shape[1])[None, :] >= split.lengths[:, None]
        assert bool((split.tokens[padding] == 0).all()) and bool((split.tokens[~padding] != 0).all())


def test_shuffled_batches_cover_each_sample_once_longest_first_with_little_padding():
    lengths = torch.randint(1, 20, (1000,))
    generator = torch.Generator().manual_seed(0)
    batches = list(shuffled_batches(lengths, 32, generator))
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    spread = max(int(lengths[b].max() - lengths[b].min()) for b in batches)
    assert spread <= 3
    assert all(bool((lengths[b][:-1] >= lengths[b][1:]).all()) for b in batches)  # packed without a sort
    again = list(shuffled_batches(lengths, 32, generator))
    assert any(not torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert sorted(torch.cat(ordered_batches(lengths, 100)).tolist()) == list(range(1000))


def test_uniform_batches_are_whole_batches_of_one_length_but_for_a_few_left_over():
    lengths = torch.randint(1, 20, (1000,))
    generator = torch.Generator().manual_seed(0)
    batches = list(uniform_batches(lengths, 32, generator))
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    uniform = [b for b in batches if len(b) == 32 and bool((lengths[b] == lengths[b][0]).all())]
    counts = torch.bincount(lengths)
    assert len(uniform) == int((counts // 32).sum())  # every length fills as many batches as it can
    rest = [b for b in batches if len(b) < 32 or not bool((lengths[b] == lengths[b][0]).all())]
    assert sum(map(len, rest)) == int((counts % 32).sum())
    assert all(bool((lengths[b][:-1] >= lengths[b][1:]).all()) for b in rest)  # packed without a sort
    again = list(uniform_batches(lengths, 32, generator))
    assert [len(b) for b in again] != [len(b) for b in batches] or any(
        not torch.equal(a, b) for a, b in zip(batches, again, strict=True))


def test_batch_cuts_padding_to_the_longest_member():
    split = tensorise([[1, 2], [3, 4, 5, 6], [7]], [0, 1, 0])
    tokens, lengths, labels = split.batch(torch.tensor([0, 2]))
    assert tokens.tolist() == [[1, 2], [7, 0]] and lengths.tolist() == [2, 1] and labels.tolist() == [0, 0]


def test_archive_members_escaping_the_folder_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data/names/Irish.txt", "Murphy\n")
        archive.writestr("data/../../evil.txt", "x")
    with zipfile.ZipFile(buffer) as archive, pytest.raises(DataError, match="refusing to extract"):
        safe_members(archive, "data/names")


@pytest.mark.skipif(not (REAL_DATA / "names").is_dir(), reason="real surname data not present")
def test_real_data_split_is_name_disjoint_without_duplicates():
    pairs = surnames.read_pairs(REAL_DATA / "names")
    assert len(pairs) == len(set(pairs)) and len({lang for _, lang in pairs}) == 18
    parts = surnames.split_by_name(pairs, 0.1, 0.1, seed=0)
    train = {n for n, _ in parts["train"]}
    assert not train & {n for n, _ in parts["test"]} and not train & {n for n, _ in parts["val"]}
    arabic_test = [n for n, lang in parts["test"] if lang == "Arabic"]
    assert 0 < len(arabic_test) < 20  # ~108 distinct Arabic names, not 10% of 2,000 repeated lines


def test_absent_data_is_downloaded_and_extracted_into_the_data_root(tmp_path, monkeypatch):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data/names/Irish.txt", "Murphy\nKelly\n")
        zipped.writestr("data/names/Italian.txt", "Rossi\n")
        zipped.writestr("data/eng-fra.txt", "not a surname file\n")
    expected = tmp_path / "expected"
    expected.mkdir()
    (expected / "Irish.txt").write_text("Murphy\nKelly\n")
    (expected / "Italian.txt").write_text("Rossi\n")
    monkeypatch.setattr(surnames, "URL", archive.as_uri())
    monkeypatch.setattr(surnames, "SHA256", folder_digest(expected))
    folder = surnames.locate(tmp_path / "root")
    assert sorted(p.name for p in folder.iterdir()) == ["Irish.txt", "Italian.txt"]
    assert surnames.read_pairs(folder) == [("Kelly", "Irish"), ("Murphy", "Irish"), ("Rossi", "Italian")]


def test_a_download_that_differs_from_the_pinned_checksum_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data/names/Irish.txt", "Murphy\nKelly\nMallory\n")  # one line more than expected
    monkeypatch.setattr(surnames, "URL", archive.as_uri())
    with pytest.raises(DataError, match="do not match the pinned SHA-256"):
        surnames.locate(tmp_path / "root")
    assert not (tmp_path / "root" / "names").exists()


def test_the_pinned_checksum_is_that_of_the_real_data():
    if not (REAL_DATA / "names").is_dir():
        pytest.skip(f"the real surname data is not at {REAL_DATA}")
    assert folder_digest(REAL_DATA / "names") == surnames.SHA256


def test_failed_download_leaves_nothing_and_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(surnames, "URL", (tmp_path / "missing.zip").as_uri())
    with pytest.raises(DataError, match=r"could not download .*put the <Language>.txt files in"):
        surnames.locate(tmp_path / "root")
    assert not (tmp_path / "root" / "names").exists()
