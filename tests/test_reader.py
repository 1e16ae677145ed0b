"""The reader's book: verdict box, "How this was run", rerun command, summary, profiles table, CLI ergonomics,
figure sizes for the column, and the publication of executed notebooks."""
from __future__ import annotations

import io
import json
import shlex
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from memlib import claims as C
from memlib import notebook as nb
from memlib import summary
from memlib.cli import find_claim, main, param_rows
from memlib.config import ConfigError, parse_overrides
from memlib.experiments import resolve
from memlib.measure import Measured
from memlib.result import Result

ROOT = Path(__file__).resolve().parent.parent


def _verdict(status=C.PARTLY, profile="quick", kind="paper"):
    scale = C.Scale(profile, "resnet9", "fashion-mnist", 4000, 0.1, 3, width=16)
    return C.Verdict("gradient_similarity", status, "The window shows.", scale=scale, kind=kind)


def test_verdict_box_leads_with_word_scale_and_deciding_numbers():
    md = nb.verdict_markdown(_verdict(), [("noisy accuracy", "100%", Measured(0.973, "percent")),
                                          ("a | b", "x", "y")])
    lines = md.splitlines()
    assert lines[0] == "````{admonition} Verdict: PARTLY REPRODUCED"
    assert lines[1] == ":class: note verdict-box"
    assert "the essential criteria hold, at least one other does not" in md
    assert "| noisy accuracy | 100% | 97.3% |" in md
    assert "| a \\| b | x | y |" in md  # a pipe in a cell does not split the row
    assert "quick profile · ResNet-9 (width 16)" in md and "Reduced-scale evidence" in md
    assert lines[-1] == "````" and lines[-2] == "The window shows."
    assert md.index("Scale:") < md.index("| noisy accuracy") < md.index("The window shows.")
    paper = nb.verdict_markdown(_verdict(C.REPRODUCED, profile="paper"))
    assert ":class: tip verdict-box" in paper and "Reduced-scale" not in paper
    assert nb.verdict_markdown(_verdict(C.SUPPORTED, kind="hypothesis")).startswith(
        "````{admonition} Hypothesis: SUPPORTED")


def test_rerun_command_names_the_profile_and_only_the_changed_values():
    cfg = resolve("gradient_similarity", "smoke")
    assert nb.rerun_command(cfg) == "python -m memlib run 01 --profile smoke"
    changed = resolve("gradient_similarity", "smoke", {"epochs": 7, "augment": True, "progress": True})
    cmd = nb.rerun_command(changed)
    assert cmd == "python -m memlib run 01 --profile smoke -p epochs=7 -p augment=true"
    # the command reproduces the configuration exactly
    args = shlex.split(cmd)
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    assert resolve("gradient_similarity", "smoke", parse_overrides(pairs)).key() == changed.key()


def test_describe_run_says_when_where_and_how_to_rerun():
    cfg = resolve("gradient_similarity", "smoke")
    res = Result(scalars={"device": "cpu (2 threads, fp32)"},
                 provenance={"finished_at": "2026-11-25T10:04:59+0000", "wall_seconds": 12.345,
                             "git_commit": "abc", "torch_version": "2.14.1"}, cached=True)
    t = nb.describe_run(cfg, res)["value"]
    assert t["computed at"] == "2026-11-25 10:04 UTC"
    assert t["computed on"] == "cpu (2 threads, fp32)" and t["device"] == "auto"  # measured vs asked for
    assert t["rerun with"] == "python -m memlib run 01 --profile smoke"
    assert t["wall time of the computation"] == "12.3 s"
    assert "progress" not in t.index
    bare = nb.describe_run(cfg, Result())["value"]
    assert bare["computed at"] == "not recorded" and bare["computed on"] == "not recorded"
    assert t.index.is_unique
    assert not bare.str.contains(r"\bNone\b|\bnan\b").any()


def test_summary_separates_paper_scale_from_reduced_scale_and_links_chapters():
    t = pd.DataFrame([
        {"claim": "01_gradient_similarity", "title": "Gradients", "verdict": "reproduced", "kind": "paper",
         "scale": "paper profile · ResNet-9", "reduced": False, "summary": "long prose"},
        {"claim": "05_lth_vs_dropout", "title": "LTH", "verdict": "supported", "kind": "hypothesis",
         "scale": "quick profile · MLP", "reduced": True, "summary": "long prose"}])
    md = summary.summary_markdown(t)
    paper, reduced = md.split("**Reduced-scale evidence")
    assert "{doc}`01 · Gradients </notebooks/01_gradient_similarity>`" in paper and "05 ·" not in paper
    assert "| {doc}`05 · LTH </notebooks/05_lth_vs_dropout>` | **supported** (the talk's hypothesis) | quick " \
           "profile · MLP |" in reduced
    assert "long prose" not in md  # rows stay one line: the chapters hold the reasons
    only_reduced = summary.summary_markdown(t[t.reduced])
    assert "No claim has been run at the `paper` profile" in only_reduced


def test_vocabulary_and_profiles_come_from_the_code():
    voc = summary.vocabulary_markdown()
    for status, meaning in C.STATUS_MEANING.items():
        assert f"*{status}*\n: {meaning}." in voc
    prof = summary.profiles_markdown().splitlines()
    assert len(prof) == 2 + 5
    row1 = prof[2]
    q1, q3 = resolve("gradient_similarity", "quick"), resolve("outlier_percentiles", "quick")
    assert (f"ResNet-9 (width {q1.width}) · Fashion-MNIST, {q1.n_train:,} examples · {q1.epochs} epochs"
            in row1)  # claim 1 at quick, as its profile says
    assert f"MLP (width {q3.width})" in prof[4] or "MLP" in prof[4]  # claim 3 at quick runs MLPs, not ResNets


@pytest.mark.parametrize("name", ["01", "1", "gradient", "gradient_similarity", "01_gradient_similarity",
                                  "01_gradient_similarity.ipynb", "GRADIENT"])
def test_short_claim_names(name):
    assert find_claim(name) == "01_gradient_similarity"


def test_ambiguous_and_unknown_claim_names_are_clear_errors():
    with pytest.raises(ConfigError, match="ambiguous: it matches 02_dropout_comparison, 05_lth_vs_dropout"):
        find_claim("op")
    assert find_claim("o") == "03_outlier_percentiles"  # a unique prefix of a module name wins
    with pytest.raises(ConfigError, match=r"unknown claim '9'; choose one of: 01 \(01_gradient_similarity\)"):
        find_claim("9")


def test_params_lists_type_values_per_profile_and_range(capsys):
    rows = {r["parameter"]: r for r in param_rows("01_gradient_similarity")}
    assert rows["width"] == {"parameter": "width", "group": "model", "type": "int", "smoke": "4", "quick": "8",
                             "paper": "64", "allowed": "> 0", "help": rows["width"]["help"]}
    assert rows["width"]["help"].endswith("[channels]")
    assert rows["noise_rate"]["allowed"] == "[0, 1)"
    assert (rows["lr"]["group"], rows["seed"]["group"], rows["probe_size"]["group"]) == ("training", "run", "experiment")
    assert rows["model"]["allowed"] == "resnet9 | smallcnn | mlp"
    assert main(["params", "gradient"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("01_gradient_similarity: parameters (override with: python -m memlib run 01 -p")
    assert main(["params", "nope"]) == 2


def test_default_figure_fits_the_column_and_wide_figures_are_clamped():
    from PIL import Image

    from memlib.plots import style

    fig, ax = style.figure()
    ax.plot([0, 1], [0, 1], label="a curve")
    style.legend_outside(ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    w = Image.open(buf).size[0]
    assert 600 <= w <= style.COLUMN_PX
    leg = fig.legends[0].get_window_extent()
    assert leg.x0 >= ax.get_window_extent().x1  # the legend sits right of the data, not on it
    with pytest.warns(UserWarning, match="wider than the book's column"):
        fig, _ = style.figure(1, 3, figsize=(15, 4))
    assert fig.get_size_inches()[0] == pytest.approx(style.COLUMN_IN)


def test_publish_executed_copies_notebooks_and_zips_them(tmp_path):
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import memlib_book
    finally:
        sys.path.pop(0)
    src = tmp_path / "jupyter_execute"
    (src / "notebooks").mkdir(parents=True)
    (src / "notebooks" / "01_a.ipynb").write_text(json.dumps({"cells": []}))
    (src / "summary.ipynb").write_text("{}")
    (src / "x.png").write_bytes(b"png")
    dest = tmp_path / "html" / "_executed"
    copied = memlib_book.publish_executed(src, dest)
    assert [p.relative_to(dest).as_posix() for p in copied] == ["notebooks/01_a.ipynb", "summary.ipynb"]
    with zipfile.ZipFile(dest / "executed-notebooks.zip") as z:
        assert sorted(z.namelist()) == ["notebooks/01_a.ipynb", "summary.ipynb"]


def test_launch_buttons_only_with_a_repository_url(monkeypatch):
    from types import SimpleNamespace

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import memlib_book
    finally:
        sys.path.pop(0)
    monkeypatch.delenv("MEMLIB_REPOSITORY_URL", raising=False)
    cfg = SimpleNamespace(html_theme_options={"launch_buttons": {"binderhub_url": "https://mybinder.org"}})
    memlib_book._repository(None, cfg)
    assert cfg.html_theme_options["launch_buttons"] == {} and not cfg.html_theme_options["use_repository_button"]
    monkeypatch.setenv("MEMLIB_REPOSITORY_URL", "https://github.com/owner/memlib/")
    monkeypatch.setenv("MEMLIB_REPOSITORY_BRANCH", "main")
    cfg = SimpleNamespace(html_theme_options={})
    memlib_book._repository(None, cfg)
    opts = cfg.html_theme_options
    assert opts["repository_url"] == "https://github.com/owner/memlib" and opts["use_repository_button"]
    assert opts["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert opts["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
