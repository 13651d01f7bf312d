"""Readers on every built-in set's format (synthetic files), splits, and bad input."""

import json

import pytest

from convtune.data.builtin import BUILTIN, load_splits, read_builtin, read_spec
from convtune.data.labels import check_labels, label_list
from convtune.data.splits import deduplicate, make_splits, stratified_split
from convtune.data.texts import TextSet, read_table, read_text_file
from convtune.errors import ConvtuneError

from ..conftest import require_shared_data

LATIN = "caf\xe9 \x85 d\xe9j\xe0 vu".encode("latin-1")  # 0x85 is NEL: must not split the line


def _fake_root(root):
    """Tiny files in each built-in set's published format, traps included."""
    def w(rel, data):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))

    w("sms_spam/SMSSpamCollection", "ham\tok &lt;#&gt; see you\nspam\tWIN cash\nham\tok &lt;#&gt; see you\nham\thi\n")
    for s in ("train", "dev", "test"):
        w(f"sst2/stsa.binary.{s}", "1 a fine film\n0 a dull film .\n")
        w(f"sst2_glue/{s}.tsv", "sentence\tlabel\nnice \t1\nbad \t0\n")
        w(f"thucnews/{s}.txt", "中华女子学院：本科层次仅1专业招男生\t0\n股市大涨\t1\n")
    w("thucnews/class.txt", "finance\nrealty\n")
    w("trec/TREC.train.all", b"0 How did " + LATIN + b" ?\n5 How far is it ?\n")
    w("trec/TREC.test.all", "3 Who was Galileo ?\n")
    w("mr/rt-polarity.all", b"1 " + LATIN + b"\n0 dull .\n")
    w("subj/subj.all", b"0 " + LATIN + b"\n1 a plot summary .\n")
    w("ag_news/classes.txt", "World\nSports\nBusiness\nSci/Tech\n")
    w("ag_news/train_subset_10k.tsv", "It #39;s over\\now.\tSci/Tech\nGoal!\tSports\n")
    w("ag_news/test.csv", '"3","T","Stocks &amp; bonds"\n"2","T","A match"\n')
    w("financial_phrasebank/Sentences_50Agree.txt", b"Sales rose @ 5 %.@positive\r\nFlat.@neutral\r\nBad\rnews.@negative\r\n")
    w("chnsenticorp_htl/ChnSentiCorp_htl_all.csv", 'label,review\n1,"很好,""不错"""\n0,差\n')
    w("waimai_10k/waimai_10k.csv", "label,review\n1,很快\n0,太慢了\n")
    w("goemotions/labels.txt", "admiration\nanger\nneutral\n")
    for s in ("train", "dev", "test"):
        w(f"goemotions/{s}.tsv", "So proud [NAME] 😀\t0,1\tid1\nok\t2\tid2\n")
    _archives(root)


def _archives(root):
    """20 Newsgroups' tarball (a header block, a Latin-1 post, one empty once stripped) and
    Reuters' zip (cats.txt with a topic listed twice, a non-UTF-8 byte, an entity)."""
    import io
    import tarfile
    import zipfile

    (root / "20news_bydate").mkdir()
    with tarfile.open(root / "20news_bydate" / "20news-bydate.tar.gz", "w:gz") as tar:
        for name, body in (("20news-bydate-train/sci.space/1", b"From: a@b\nSubject: x\n\nOrbit \xe9 text\n"),
                           ("20news-bydate-train/rec.autos/1", b"From: c@d\n\n"),
                           ("20news-bydate-test/rec.autos/7", b"From: c@d\nLines: 2\n\nWheels\r\nand tyres\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    (root / "reuters_modapte" / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(root / "reuters_modapte" / "corpora" / "reuters.zip", "w") as z:
        z.writestr("reuters/cats.txt", "training/2 grain wheat\ntraining/10 earn\ntest/5 trade trade\n")
        z.writestr("reuters/training/2", "WHEAT UP\n  &lt;AB> says\n")
        z.writestr("reuters/training/10", "EARN\n  M\xfcller\n".encode("latin-1"))
        z.writestr("reuters/test/5", "TRADE\n")


def test_every_builtin_format_reads(tmp_path, monkeypatch):
    _fake_root(tmp_path)
    monkeypatch.setenv("CONVTUNE_DATA", str(tmp_path))
    got = {name: read_builtin(name) for name in BUILTIN if name != "financial_phrasebank_allagree"}
    sms = got["sms_spam"][0]
    assert sms.texts[0] == "ok <#> see you" and sms.labels[:2] == ["ham", "spam"]
    assert got["sst2"][2].labels == ["positive", "negative"]
    assert got["sst2_glue"][0].labels == ["positive", "negative"]
    trec_train = got["trec"][0]
    assert trec_train.texts[0] == "How did caf\xe9 \x85 d\xe9j\xe0 vu ?" and trec_train.labels == ["DESC", "NUM"]
    assert len(got["mr"][0]) == 2 and len(got["subj"][0]) == 2
    assert got["ag_news"][0].texts[0] == "It's over now." and got["ag_news"][2].labels == ["Business", "Sports"]
    assert got["ag_news"][2].texts[0] == "Stocks & bonds"
    fin = got["financial_phrasebank"][0]
    assert fin.texts[0] == "Sales rose @ 5 %." and fin.labels == ["positive", "neutral", "negative"]
    assert got["thucnews"][0].labels == ["finance", "realty"]
    assert got["chnsenticorp_htl"][0].texts[0] == '很好,"不错"'
    assert got["waimai_10k"][0].labels == ["positive", "negative"]
    assert got["goemotions"][2].labels == [("admiration", "anger"), ("neutral",)]
    news_train, _, news_test = got["20news"]
    assert news_train.texts == ["Orbit \xe9 text"] and news_train.labels == ["sci.space"]  # headers gone, empty dropped
    assert news_test.texts == ["Wheels\nand tyres"]
    reuters_train, _, reuters_test = got["reuters"]
    assert reuters_train.labels == [("grain", "wheat"), ("earn",)] and reuters_test.labels == [("trade",)]
    assert reuters_train.texts[0] == "WHEAT UP <AB> says" and "M\xfcller" in reuters_train.texts[1]


def test_missing_builtin_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVTUNE_DATA", str(tmp_path))
    with pytest.raises(ConvtuneError, match="CONVTUNE_DATA"):
        load_splits("sst2")


def test_dedupe_and_stratified_split_are_seeded():
    texts = [f"text {i}" for i in range(100)] + ["text 1", "text  2"]
    labels = ["a" if i % 4 else "b" for i in range(100)] + ["a", "a"]
    data, dropped = deduplicate(TextSet(texts, labels))
    assert dropped == 2 and len(data) == 100
    tr, dv, te = stratified_split(data, (0.8, 0.1, 0.1), seed=7)
    assert (len(tr), len(dv), len(te)) == (80, 10, 10)
    assert dv.labels.count("b") in (2, 3) and te.labels.count("b") in (2, 3)
    assert not set(tr.texts) & set(te.texts)
    again = stratified_split(data, (0.8, 0.1, 0.1), seed=7)
    assert again[2].texts == te.texts
    assert stratified_split(data, (0.8, 0.1, 0.1), seed=8)[2].texts != te.texts


def test_make_splits_records_how():
    data = TextSet([f"t{i}" for i in range(50)] * 2, ["x", "y"] * 50)
    s = make_splits("toy", data, None, None, seed=3)
    d = s.describe()
    assert d["duplicates_dropped"] == 50 and d["seed"] == 3
    assert d["train"]["size"] + d["dev"]["size"] + d["test"]["size"] == 50
    assert len(d["test"]["fingerprint"]) == 16


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"text,label\n", "no data rows"),
    (b"body,label\nhello,a\n", "cannot tell which column holds the text"),
    (b"text,label\nhello,\n", "row 1 has no label"),
    (b"text,label\ncaf\xe9,a\n", "not valid utf-8"),
    # An unquoted comma shifts the label into the text's place: refuse, do not drop the rest.
    (b"text,label\nok,a\nHello, world,b\n", "line 3 has 3 fields, the header 2; quote texts"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(ConvtuneError, match=match) as e:
        read_table(p)
    assert "\n" not in str(e.value)


def test_jsonl_text_that_is_not_a_string_names_the_column(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "fine", "label": "a"}\n{"text": 12345, "label": "b"}\n')
    with pytest.raises(ConvtuneError, match="row 2: column 'text' holds int '12345', not a text"):
        read_table(p)


def test_missing_file_and_named_column(tmp_path):
    with pytest.raises(ConvtuneError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    p = tmp_path / "d.tsv"
    p.write_text("sentence\ty\nhi\ta\n")
    with pytest.raises(ConvtuneError, match="no column 'label'"):
        read_table(p, label_col="label")
    assert read_table(p, label_col="y").labels == ["a"]


def test_jsonl_and_latin1(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"text": "héllo", "label": 1}) + "\n\n" + json.dumps({"text": "b", "label": 0}) + "\n")
    assert read_table(p).labels == ["1", "0"]
    q = tmp_path / "l.csv"
    q.write_bytes(b"text,label\ncaf\xe9,a\n")
    assert read_table(q, encoding="latin-1").texts == ["caf\xe9"]


def test_label_checks():
    with pytest.raises(ConvtuneError, match="only one class"):
        label_list(TextSet(["a", "b"], ["x", "x"]))
    assert label_list(TextSet(["a", "b", "c"], ["10", "9", "1"])) == ["1", "9", "10"]
    with pytest.raises(ConvtuneError, match="'z'"):
        check_labels(TextSet(["a"], ["z"]), ["x", "y"], "dev split")


def test_real_shared_sets_have_published_sizes():
    require_shared_data("sst2", "trec", "thucnews", "sms_spam")
    sst2 = load_splits("sst2")
    assert (len(sst2.train), len(sst2.dev), len(sst2.test)) == (6920, 872, 1821)
    trec = load_splits("trec")
    assert len(trec.train) + len(trec.dev) + trec.record["duplicates_dropped"] == 5452
    assert len(trec.test) == 500
    thuc = load_splits("thucnews")
    assert (len(thuc.train), len(thuc.dev), len(thuc.test)) == (180000, 10000, 10000)
    sms = load_splits("sms_spam", seed=42)
    assert sms.record["method"].startswith("de-duplicated")
    assert not set(sms.train.texts) & set(sms.test.texts)


def test_predict_input_with_unquoted_comma_is_refused(tmp_path):
    # A one-column CSV with an unquoted comma used to predict on the text cut at the comma.
    from convtune.deploy.predict_io import iter_texts

    p = tmp_path / "in.csv"
    p.write_text('text\n"Hello, quoted"\nHello, world\n')
    texts = iter_texts(str(p), None, "utf-8")
    assert next(texts) == "Hello, quoted"
    with pytest.raises(ConvtuneError, match="line 3 has 2 fields, the header 1"):
        next(texts)


def test_semicolon_csv_is_read(tmp_path):
    # Spreadsheets in many European locales save "CSV" with semicolons.
    p = tmp_path / "d.csv"
    p.write_text('text;label\n"good, really";pos\nbad;neg\n')
    data = read_table(p)
    assert data.texts == ["good, really", "bad"] and data.labels == ["pos", "neg"]
    from convtune.deploy.predict_io import iter_texts

    assert list(iter_texts(str(p), None, "utf-8")) == ["good, really", "bad"]


def test_too_few_texts_to_split_is_one_clear_line(tmp_path):
    # Two texts split 80/10/10 left dev empty, and training failed later with "no texts given".
    f = tmp_path / "two.csv"
    f.write_text("text,label\nhello there,ham\nwin cash now,spam\n")
    with pytest.raises(ConvtuneError, match="2 texts are too few to split off a dev set"):
        load_splits(str(f))
    from convtune.estimators.tfidf import TfidfClassifier

    with pytest.raises(ConvtuneError, match="too few to split off a dev set"):  # the Python API too
        TfidfClassifier().fit(["a b", "c d", "e f"], ["x", "y", "x"])


def test_folder_and_unknown_name_are_named_as_such(tmp_path):
    with pytest.raises(ConvtuneError, match="a folder, not a file"):
        read_text_file(tmp_path)
    with pytest.raises(ConvtuneError, match="neither a file nor a built-in data set"):
        read_spec("no_such_set")  # evaluate's path used to say "no such file"


def test_a_text_longer_than_the_csv_modules_field_limit_is_read(tmp_path):
    # csv refuses fields over 131,072 characters; the file said "malformed CSV" for a long document.
    f = tmp_path / "long.csv"
    f.write_text('text,label\n"' + "word " * 40_000 + '",a\nshort,b\n')
    data = read_table(f)
    assert len(data.texts[0]) == 200_000 and data.labels == ["a", "b"]


# ---------------------------------------------------------------- hardening

def test_empty_texts_are_skipped_with_one_warning_or_refused_with_strict(tmp_path, capsys):
    # The public CR set has 4 blank sentences among 3,020; the whole file used to be refused.
    p = tmp_path / "cr.csv"
    p.write_text("text,label\ngood,pos\n   ,neg\nbad,neg\n,pos\nfine,pos\n")
    data = read_table(p)
    assert data.texts == ["good", "bad", "fine"] and data.labels == ["pos", "neg", "pos"]
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "skipped 2 row(s) with an empty text" in err and "rows 2, 4" in err
    with pytest.raises(ConvtuneError, match="data row 2 has an empty text"):
        read_table(p, strict=True)
    blank = tmp_path / "blank.csv"
    blank.write_text("text,label\n  ,a\n,b\n")
    with pytest.raises(ConvtuneError, match="every data row has an empty text"):
        read_table(blank)


def test_cli_train_strict_refuses_empty_texts(tmp_path, capsys):
    from convtune.cli import main

    p = tmp_path / "d.csv"
    p.write_text("text,label\ngood,pos\n ,neg\n")
    assert main(["train", "--data", str(p), "--head", "tfidf-svm", "--strict", "--out", str(tmp_path / "o")]) == 2
    assert "data row 2 has an empty text" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_lone_surrogate_in_a_jsonl_file_is_one_line(tmp_path):
    # Valid JSON ("\ud800"), not valid text: the tokenizer used to fail with a TypeError traceback.
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "good", "label": "pos"}\n{"text": "bad \\ud800 text", "label": "neg"}\n')
    with pytest.raises(ConvtuneError, match=r"data row 2: the text holds a lone surrogate U\+D800"):
        read_table(p)


def test_deeply_nested_jsonl_is_one_line(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_text('{"text": "a", "label": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(ConvtuneError, match="nested too deeply"):
        read_table(p)


@pytest.mark.parametrize("head, says", [
    ("text,label\n".encode("utf-16"), "UTF-16 text (it starts with a byte-order mark); pass --encoding utf-16"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip-compressed; decompress it first"),
    (b"PK\x03\x04\x14\x00", "a zip archive"),
    (b"text,label\n\x00\x01\x02", "binary file"),
])
def test_files_that_are_not_utf8_text_say_what_they_are(tmp_path, head, says):
    p = tmp_path / "data.csv"
    p.write_bytes(head + b"rest of the file")
    with pytest.raises(ConvtuneError) as e:
        read_table(p)
    assert says in str(e.value) and "latin-1" not in str(e.value)


def test_utf16_reads_when_asked(tmp_path):
    p = tmp_path / "data.csv"
    p.write_bytes("text,label\nhello,a\nworld,b\n".encode("utf-16"))
    assert read_table(p, encoding="utf-16").texts == ["hello", "world"]


def test_label_order_does_not_depend_on_the_hash_seed():
    import subprocess
    import sys

    code = ("from convtune.data.texts import TextSet; from convtune.data.labels import label_list;"
            "print(label_list(TextSet(['a'] * 6, ['1.0', '1', '2', '01', '2.0', '10'])))")
    import os

    orders = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                             capture_output=True, text=True, check=True).stdout for seed in range(8)}
    assert orders == {"['01', '1', '1.0', '2', '2.0', '10']\n"}


def test_labels_with_nan_sort_as_text():
    assert label_list(TextSet(["a"] * 3, ["nan", "2", "10"])) == ["10", "2", "nan"]


def test_rare_classes_get_one_warning(capsys):
    from convtune.data.inputs import train_dev

    texts = [f"t{i}" for i in range(8)]
    train_dev(texts, ["a", "a", "a", "b", "b", "b", "c", "d"], texts[:2], ["a", "b"], seed=0)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "2 of 4 classes have fewer than 2 training examples" in err


def test_file_readers_never_fail_unexpectedly():
    """Property: any generated file (CSV / TSV / JSONL rows with nested values, surrogates, huge
    numbers, wrong types, raw bytes) is read or refused with one ConvtuneError, by the training
    reader and by predict's streaming reader alike."""
    import os
    import tempfile
    from pathlib import Path

    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    from convtune.deploy.predict_io import iter_texts

    texts = st.text(alphabet=st.characters(codec=None, categories=None), max_size=30)
    leaf = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | texts
    values = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(texts, kids, max_size=3),
                          max_leaves=12)
    keys = st.sampled_from(["text", "label", "sentence", "x"]) | texts
    jsonl = st.lists(st.dictionaries(keys, values, max_size=4) | values, max_size=6).map(
        lambda rows: "\n".join(json.dumps(r) for r in rows).encode())
    cell = texts.map(lambda t: t.encode("utf-8", "surrogatepass"))
    table = st.lists(st.lists(cell, min_size=1, max_size=4), max_size=6).map(
        lambda rows: b"text,label\n" + b"\n".join(b",".join(r) for r in rows))
    deep = st.integers(1, 5000).map(lambda n: b'{"text": ' + b"[" * n + b"]" * n + b', "label": "a"}\n')
    files = st.tuples(st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]),
                      st.one_of(jsonl, table, deep, st.binary(max_size=300)))

    @hypothesis.settings(max_examples=int(os.environ.get("CONVTUNE_HYPOTHESIS_EXAMPLES", "1500")),
                         deadline=None, database=None)
    @hypothesis.given(files)
    def check(case):
        suffix, content = case
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"data{suffix}"
            path.write_bytes(content)
            if suffix != ".txt":
                try:
                    data = read_table(path)
                    assert len(data.texts) == len(data.labels) > 0
                except ConvtuneError:
                    pass
            try:
                assert all(isinstance(t, str) for t in iter_texts(str(path), None, "utf-8"))
            except ConvtuneError:
                pass

    check()


@pytest.mark.slow
def test_file_readers_never_fail_unexpectedly_long(monkeypatch):
    monkeypatch.setenv("CONVTUNE_HYPOTHESIS_EXAMPLES", "20000")
    test_file_readers_never_fail_unexpectedly()


def test_both_readers_share_one_bom_rule_and_one_parser(tmp_path):
    # Training files and predict's streaming reader used to differ: "UTF-8" (upper case) kept
    # the BOM in predict's first column name, and a .json file was read as lines of text.
    from convtune.deploy.predict_io import iter_texts

    csv_file = tmp_path / "bom.csv"
    csv_file.write_bytes("\ufefftext,label\ngood film,pos\nbad film,neg\n".encode("utf-8"))
    assert read_table(csv_file, encoding="UTF-8").texts == ["good film", "bad film"]
    assert list(iter_texts(str(csv_file), None, "UTF-8")) == ["good film", "bad film"]
    json_file = tmp_path / "rows.json"
    json_file.write_text('{"text": "good film", "label": "pos"}\n{"text": "bad film", "label": "neg"}\n')
    assert read_table(json_file).texts == list(iter_texts(str(json_file), None, "utf-8")) == ["good film", "bad film"]


def test_quoted_line_breaks_read_the_same_for_training_and_prediction(tmp_path):
    """A quoted field keeps its line breaks (\\n, \\r\\n, a bare CR) in every reader; a label too."""
    import csv

    from convtune.deploy.predict_io import iter_texts

    texts = [f"first line {i}\nsecond line" if i % 3 == 0 else f"one\r\ntwo {i}" if i % 3 == 1 else f"a\rb {i}"
             for i in range(30)]
    labels = ["line1\nline2" if i % 2 else "plain" for i in range(30)]
    path = tmp_path / "breaks.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
    data = read_table(path)
    assert data.texts == texts == list(iter_texts(str(path), None, "utf-8"))
    assert data.labels == labels


@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_a_bare_cr_outside_quotes_gets_the_same_answer_from_both_readers(tmp_path, suffix):
    from convtune.deploy.predict_io import iter_texts

    path = tmp_path / f"cr{suffix}"
    path.write_bytes(b"text,label\ngood\rfilm,pos\nbad film,neg\n")
    if suffix == ".txt":  # one text a line: a CR inside a line does not split it
        assert list(iter_texts(str(path), None, "utf-8")) == ["text,label", "good\rfilm,pos", "bad film,neg"]
        return
    for read in (lambda: read_table(path), lambda: list(iter_texts(str(path), None, "utf-8"))):
        with pytest.raises(ConvtuneError, match=r"line 2 holds a carriage return \(CR\) outside quotes"):
            read()


def test_a_selected_column_named_twice_in_the_header_is_refused(tmp_path):
    from convtune.deploy.predict_io import iter_texts

    path = tmp_path / "dup.csv"
    path.write_text("text,label,text,note,note\ngood film,pos,x,a,b\nbad film,neg,x,a,b\n")
    for read in (lambda: read_table(path), lambda: list(iter_texts(str(path), None, "utf-8"))):
        with pytest.raises(ConvtuneError, match="names column 'text' more than once"):
            read()
    ok = tmp_path / "ok.csv"  # a repeated column nobody reads is no problem
    ok.write_text("text,label,note,note\ngood film,pos,a,b\nbad film,neg,a,b\n")
    assert read_table(ok).texts == ["good film", "bad film"]
    lab = tmp_path / "lab.csv"
    lab.write_text("text,label,label\ngood film,pos,x\nbad film,neg,x\n")
    with pytest.raises(ConvtuneError, match="names column 'label' more than once"):
        read_table(lab)
