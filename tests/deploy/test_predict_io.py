"""`convtune predict --output`: one writer per output file, and each job resumes only its own work."""

import subprocess
import sys
import time

from convtune.cli import main

from ..conftest import toy_texts


def _write_lines(path, texts):
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")


def test_a_second_writer_of_one_output_is_refused_while_the_first_lives(tiny_model_dir, tmp_path):
    out, other = tmp_path / "r.csv", tmp_path / "other.txt"
    texts, _ = toy_texts(50, seed=3)
    _write_lines(other, toy_texts(80, seed=4)[0])
    # Writer 1 reads standard input from a pipe this test holds open, so it is still writing
    # (holding the output) when writer 2 starts.
    first = subprocess.Popen([sys.executable, "-m", "convtune", "predict", str(tiny_model_dir), "--input", "-",
                              "--output", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = tmp_path / ".r.csv.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    first.stdin.write("".join(t + "\n" for t in texts[:20]).encode())
    first.stdin.flush()
    second = subprocess.run([sys.executable, "-m", "convtune", "predict", str(tiny_model_dir), "--input",
                             str(other), "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr[-2000:]
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and "being written by another convtune predict" in err[0] and str(first.pid) in err[0]
    first.stdin.write("".join(t + "\n" for t in texts[20:]).encode())
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err.decode()[-2000:]
    rows = out.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("text,label") and [r.split(",")[0] for r in rows[1:]] == texts
    assert "\0" not in out.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "r.csv"]  # no lock, no partial left


def test_a_run_resumes_only_its_own_partial(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import convtune.deploy.predict_io as pio
    from convtune.estimators.transformer import Classifier

    a, b, out = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "r.jsonl"
    _write_lines(a, toy_texts(300, seed=5)[0])
    _write_lines(b, toy_texts(200, seed=6)[0])
    monkeypatch.setattr(pio, "CHUNK", 64)
    original, calls = Classifier.predict_proba, {"n": 0}

    def interrupted(self, texts, batch_size=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, texts, batch_size)

    monkeypatch.setattr(Classifier, "predict_proba", interrupted)
    assert main(["predict", str(tiny_model_dir), "--input", str(a), "--output", str(out)]) == 130
    assert len(list(tmp_path.glob(".r.jsonl.partial-*"))) == 2  # the partial and its marker
    monkeypatch.setattr(Classifier, "predict_proba", original)
    capsys.readouterr()
    assert main(["predict", str(tiny_model_dir), "--input", str(b), "--output", str(out)]) == 0
    assert "resuming" not in capsys.readouterr().err  # another job's partial is not resumed
    import json

    assert [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()] == \
        b.read_text(encoding="utf-8").splitlines()
    assert not list(tmp_path.glob(".r.jsonl.*"))  # the finished output removed the other job's leftovers
