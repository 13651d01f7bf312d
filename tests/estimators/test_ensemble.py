"""Greedy ensemble selection over saved models: the selection, save / load, bad members."""

import json

import numpy as np
import pytest

from convtune import load
from convtune.errors import ConvtuneError
from convtune.estimators.ensemble import Ensemble, select
from convtune.estimators.tfidf import TfidfClassifier

from ..conftest import toy_multilabel, toy_texts


def test_selection_is_never_below_its_best_member_on_dev():
    rng = np.random.default_rng(0)
    for trial in range(20):
        y = rng.integers(0, 3, 120)
        probas = rng.dirichlet(np.ones(3), size=(4, 120))
        probas[0] = 0.5 * probas[0] + 0.5 * np.eye(3)[y]  # one good member
        counts, scores = select(probas, y, multi_label=False, steps=10)
        best_alone = max(scores[:1])
        assert max(scores) >= best_alone and counts.sum() >= 1, trial
    # two members right on different halves: together they beat each
    y = np.array([0, 1] * 50)
    a = np.where(np.arange(100)[:, None] < 50, np.eye(2)[y] * 0.9 + 0.05, 0.5)
    b = np.where(np.arange(100)[:, None] >= 50, np.eye(2)[y] * 0.9 + 0.05, 0.5)
    counts, scores = select(np.stack([a, b]), y, multi_label=False, steps=5)
    assert (counts > 0).all() and scores[np.argmax([s[0] for s in scores])][0] == 1.0


def _members(n: int = 240):
    texts, labels = toy_texts(n)
    dev_texts, dev_labels = toy_texts(80, seed=1)
    members = [TfidfClassifier(model=m).fit(texts, labels, dev_texts, dev_labels) for m in ("svm", "nb")]
    return members, dev_texts, dev_labels


def test_an_ensemble_saves_loads_and_predicts_the_same(tmp_path):
    members, dev_texts, dev_labels = _members()
    ens = Ensemble(members).fit(dev_texts, dev_labels, dev_texts, dev_labels)
    assert ens.weights_.sum() == pytest.approx(1.0) and ens.selection_["ensemble_dev"] >= max(ens.selection_["members_dev"])
    ens.save(tmp_path / "e")
    back = load(tmp_path / "e")
    probe, _ = toy_texts(30, seed=5)
    np.testing.assert_allclose(back.predict_proba(probe), ens.predict_proba(probe), atol=1e-6)
    assert back.predict(probe) == ens.predict(probe)
    # w = 1 on one member: exactly that member's probabilities (before the ensemble's temperature)
    one = Ensemble(members)
    one.labels_, one.weights_, one.multi_label_ = list(members[0].labels_), np.array([1.0, 0.0]), False
    np.testing.assert_allclose(np.exp(one.decision_function(probe)), members[0].predict_proba(probe), atol=1e-6)


def test_a_multi_label_ensemble_tunes_its_own_thresholds(tmp_path):
    texts, labels = toy_multilabel(200)
    dev_texts, dev_labels = toy_multilabel(80, seed=1)
    members = [TfidfClassifier(model=m).fit(texts, labels, dev_texts, dev_labels) for m in ("svm", "nb")]
    ens = Ensemble(members).fit(texts, labels, dev_texts, dev_labels)
    assert ens.multi_label_ and len(ens.thresholds_) == 2 and ens.selection_["metric"] == "micro_f1"
    ens.save(tmp_path / "e")
    assert load(tmp_path / "e").predict(dev_texts[:5]) == ens.predict(dev_texts[:5])


def test_bad_members_and_tampered_directories_are_one_line(tmp_path):
    members, dev_texts, dev_labels = _members()
    other = TfidfClassifier().fit(*toy_multilabel(120))
    with pytest.raises(ConvtuneError, match="labels differ"):
        Ensemble([members[0], other]).fit(dev_texts, dev_labels, dev_texts, dev_labels)
    with pytest.raises(ConvtuneError, match="at least two models"):
        Ensemble(members[:1]).fit(dev_texts, dev_labels, dev_texts, dev_labels)
    with pytest.raises(ConvtuneError, match="dev texts"):
        Ensemble(members).fit(dev_texts, dev_labels)
    Ensemble(members).fit(dev_texts, dev_labels, dev_texts, dev_labels).save(tmp_path / "e")
    manifest = json.loads((tmp_path / "e" / "convtune.json").read_text())
    for change, message in ((("dir", "../../elsewhere"), "outside members/"), (("weight", 7), "from 0 to 1")):
        bad = json.loads(json.dumps(manifest))
        bad["model"]["members"][0][change[0]] = change[1]
        (tmp_path / "e" / "convtune.json").write_text(json.dumps(bad))
        with pytest.raises(ConvtuneError, match=f"damaged model directory.*{message}"):
            load(tmp_path / "e")


def test_blend_verb_checks_the_split_and_writes_a_run(tmp_path, toy_csv, capsys):
    from convtune.cli import main

    for head in ("tfidf-svm", "tfidf-nb"):
        assert main(["train", "--data", str(toy_csv), "--head", head, "--out", str(tmp_path / head)]) == 0
    assert main(["train", "--data", str(toy_csv), "--head", "tfidf-nb", "--seed", "7", "--out", str(tmp_path / "s7")]) == 0
    capsys.readouterr()
    out = tmp_path / "ens"
    assert main(["blend", str(tmp_path / "tfidf-svm"), str(tmp_path / "tfidf-nb"), "--data", str(toy_csv),
                 "--out", str(out)]) == 0
    assert "saved" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["head"] == "ensemble" and "test" in m and (out / "README.md").is_file()
    assert (out / "members" / "0" / "convtune.json").is_file()
    assert main(["predict", str(out), "a superb film"]) == 0
    # another seed carved another dev split from the file: its dev texts may be ours' train texts
    assert main(["blend", str(tmp_path / "tfidf-svm"), str(tmp_path / "s7"), "--data", str(toy_csv),
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "trained on another split" in err and "Traceback" not in err and not (tmp_path / "bad").exists()


def test_the_server_predicts_what_the_ensemble_predicts(tmp_path):
    import asyncio

    import httpx

    from convtune.deploy.serve import ServeConfig, create_app

    members, dev_texts, dev_labels = _members()
    ens = Ensemble(members).fit(dev_texts, dev_labels, dev_texts, dev_labels)
    ens.save(tmp_path / "e")
    app = create_app(tmp_path / "e", ServeConfig(batch_wait_ms=1))
    probe = ["a superb film", "an awful plot"]

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return [await client.post("/predict", json={"texts": probe}), await client.get("/info")]

    predicted, info = asyncio.run(run())
    got = predicted.json()["predictions"]
    want = ens.predict_proba(probe)
    for g, w in zip(got, want):
        assert [g["probabilities"][label] for label in ens.labels_] == pytest.approx(list(w), abs=1e-5)
    assert info.status_code == 200 and info.json()["kind"] == "ensemble"
