"""The search report: results.json, report.md, a self-contained report.html and its pictures.

The expected best dev score after n trials follows Dodge et al. 2019 ("Show Your Work"): with
the N completed trials' scores sorted, v(1) <= ... <= v(N), drawing n of them with replacement,
E[max] = sum_i v(i) * ((i/N)^n - ((i-1)/N)^n). Pruned trials have no final score and are left
out of it (they are counted in the budget).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from convtune._fs import write_json
from convtune.experiments.plots import _pyplot
from convtune.experiments.report import render_html


def expected_best(values: list[float]) -> list[float]:
    """E[max of n draws] for n = 1..N from the empirical distribution of `values`."""
    v, n_all = sorted(values), len(values)
    return [sum(x * ((i / n_all) ** n - ((i - 1) / n_all) ** n) for i, x in enumerate(v, 1))
            for n in range(1, n_all + 1)]


def trial_rows(study) -> list[dict]:
    """Every trial: number, state, dev score, parameters, seconds and what the objective recorded."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):  # opened after the budget was reached elsewhere; never ran
            continue
        # A failed trial's end is when it was found dead (a later run), not when it stopped.
        ended = t.datetime_complete if t.state.name != "FAIL" else None
        seconds = (ended - t.datetime_start).total_seconds() if ended and t.datetime_start else None
        keep = ("default", "retry_of", "epochs_run", "best_epoch", "dev_accuracy", "cache_seconds", "diverged")
        rows.append({"number": t.number, "state": t.state.name.lower(), "dev_macro_f1": t.value, "params": t.params,
                     "seconds": None if seconds is None else round(seconds, 1),
                     "last_epoch": max(t.intermediate_values) if t.intermediate_values else None,
                     **{k: t.user_attrs[k] for k in keep if k in t.user_attrs}})
    return rows


def _plot_expected(curve: list[float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3)
    ax.set_xlabel("trials (n)")
    ax.set_ylabel("expected best dev macro-F1")
    ax.set_title("Expected best dev score (Dodge et al. 2019)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _optuna_plots(study, out: Path) -> tuple[list[str], dict]:
    """Optuna's matplotlib plots (history, importances) and the importances themselves."""
    import optuna
    from optuna.visualization import matplotlib as vm

    plt, names, importances = _pyplot(), [], {}
    with warnings.catch_warnings():  # experimental plots; "regimes with fewer than 2 trials" on small studies
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        for name, draw in (("optimization_history.png", vm.plot_optimization_history),
                           ("param_importances.png", vm.plot_param_importances)):
            try:
                ax = draw(study)
            except (ValueError, RuntimeError):  # too few complete trials, or one parameter value only
                continue
            ax.figure.set_size_inches(7, 4)
            ax.figure.tight_layout()
            ax.figure.savefig(out / name, dpi=110)
            plt.close(ax.figure)
            names.append(name)
        try:
            importances = {k: round(v, 4) for k, v in optuna.importance.get_param_importances(study).items()}
        except (ValueError, RuntimeError):
            pass
    return names, importances


def write_report(res: dict, study, out: Path) -> None:
    """results.json, the pictures, report.md and report.html in `out`."""
    values = [r["dev_macro_f1"] for r in res["trials"] if r["state"] == "complete"]
    res["expected_best"] = [round(x, 5) for x in expected_best(values)]
    pictures = []
    if values:
        _plot_expected(res["expected_best"], out / "expected_best.png")
        pictures.append("expected_best.png")
    names, res["importances"] = _optuna_plots(study, out)
    write_json(out / "results.json", res)
    markdown = render_markdown(res, pictures + names)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.html").write_text(render_html(markdown, out, "convtune search"), encoding="utf-8")


def _pct(m: dict | None, key: str) -> str:
    return "-" if not m or m.get(key) is None else f"{m[key] * 100:.2f}"


def _result_table(res: dict) -> list[str]:
    best, base = res["best"], res["baseline"]
    default = next((r for r in res["trials"] if r.get("default") and r["state"] == "complete"), None)
    lines = ["| model | dev macro-F1 % | dev accuracy % | test accuracy % | test macro-F1 % |", "|---|---|---|---|---|",
             f"| best trial (#{best['number']}) | {best['dev_macro_f1'] * 100:.2f} | {_pct(best, 'dev_accuracy')} | "
             f"{_pct(res['test'], 'accuracy')} | {_pct(res['test'], 'macro_f1')} |"]
    if default:
        lines.append(f"| default recipe (#{default['number']}) | {default['dev_macro_f1'] * 100:.2f} | "
                     f"{_pct(default, 'dev_accuracy')} | not evaluated | not evaluated |")
    lines.append(f"| TF-IDF + linear SVM | {_pct(base['dev'], 'macro_f1')} | {_pct(base['dev'], 'accuracy')} | "
                 f"{_pct(base.get('test'), 'accuracy')} | {_pct(base.get('test'), 'macro_f1')} |")
    return lines


def render_markdown(res: dict, pictures: list[str]) -> str:
    a, c = res["about"], res["counts"]
    retried = [r["retry_of"] for r in res["trials"] if "retry_of" in r]
    lines = [f"# convtune search: {a['data']}", "",
             f"Head `{a['head']}`, mode `{a['mode']}`, encoder `{a['encoder']}`. Command: `{a['command']}`", "",
             f"Study `{res['study']}` in `{res['storage']}`; TPE sampler, {res['pruner']} pruner on each epoch's dev "
             f"macro-F1. Budget: {res['budget']['trials']} finished trials"
             + (f", timeout {res['budget']['timeout']:g} s" if res["budget"].get("timeout") else "")
             + f". Trials: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed"
             + (f" ({', '.join('#' + str(n) for n in retried)} retried)" if retried else "")
             + f"; {_study_seconds(res):.0f} s of trials in all. Only dev was seen during the search; the best trial "
             "alone was evaluated on test, once.", "", "## Result", "", *_result_table(res), "",
             (f"The best model is an ordinary run directory: `{res['best_dir']}`." if res["best_dir"] else
              f"The best trial's model is not in this --out: worker `{res['best'].get('worker')}` trained it, and "
              "its --out holds it (trials/); this one was not tested here."), ""]
    lines += _cost_lines(res) + ["## Best parameters", "", "| parameter | best | default | searched |", "|---|---|---|---|"]
    for p in res["space"]:
        best = res["best"]["params"].get(p["name"], "(inactive)")
        lines.append(f"| {p['name']} | {_short(best)} | {_short(p['default'])} | {p['range']} |")
    lines += ["", "## Expected best dev macro-F1 against the number of trials", "",
              "Dodge et al. 2019: the expected maximum of n trials drawn from the completed ones.", "",
              "| n | " + " | ".join(str(n) for n in _marks(len(res["expected_best"]))) + " |",
              "|---|" + "---|" * len(_marks(len(res["expected_best"]))),
              "| E[best] % | " + " | ".join(f"{res['expected_best'][n - 1] * 100:.2f}"
                                            for n in _marks(len(res["expected_best"]))) + " |", ""]
    if res["importances"]:
        lines += ["## Parameter importances", "", "Optuna's default evaluator (PED-ANOVA in Optuna 5) over the "
                  "completed trials; with few trials, a rough guide.", "", "| parameter | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in res["importances"].items()] + [""]
    lines += ["## Trials", "", "| # | state | dev macro-F1 % | epochs | seconds | parameters |", "|---|---|---|---|---|---|"]
    for r in res["trials"]:
        note = " (default)" if r.get("default") else f" (retry of #{r['retry_of']})" if "retry_of" in r else ""
        score = "-" if r["dev_macro_f1"] is None else f"{r['dev_macro_f1'] * 100:.2f}"
        params = ", ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
        lines.append(f"| {r['number']}{note} | {r['state']} | {score} | {r.get('last_epoch') or '-'} | "
                     f"{r['seconds'] if r['seconds'] is not None else '-'} | {params} |")
    lines += ["", "## Pictures", ""] + [f"![{p}]({p})" for p in pictures] + [""]
    return "\n".join(lines)


def _cost_lines(res: dict) -> list[str]:
    """Seconds per trial: the first (which fills a frozen-mode cache) against the rest."""
    done = [r for r in res["trials"] if r["state"] in ("complete", "pruned") and r["seconds"] is not None]
    if len(done) < 2:
        return []
    first, rest = done[0], [r["seconds"] for r in done[1:]]
    cache = f" (of which {first['cache_seconds']:.0f} s filling the token-state cache)" if first.get("cache_seconds") else ""
    return [f"Cost: the first trial took {first['seconds']:.0f} s{cache}; the {len(rest)} later ones "
            f"{sum(rest) / len(rest):.0f} s on average.", ""]


def _study_seconds(res: dict) -> float:
    """The trials' own seconds, whichever run of the command (or worker) ran them."""
    return sum(r["seconds"] or 0 for r in res["trials"])


def _marks(n: int) -> list[int]:
    return sorted({m for m in (1, 2, 3, 5, 10, 20, 30, 50, 100, n) if 1 <= m <= n})


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)

