"""`rlvr report` on hand-written run folders: the page, its embedded plots, the summary values, errors."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image
from report_fake_run import make_run, metrics_row

from oneshot_rlvr.cli import main
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.report import load_run, plot_saturation, write_report
from oneshot_rlvr.report.plots import PLOTS, reflection_counts_by_step

DATA_URI = "data:image/png;base64,"


def embedded_images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)",
                                                                          page)]


def assert_real_plot(image: Image.Image) -> None:
    image.load()
    assert image.width >= 500 and image.height >= 300, image.size
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20  # axes, text and curves, not a blank canvas


def test_full_run_page_embeds_every_plot_and_the_summary(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page_path = write_report(run)
    assert page_path == run / "report" / "index.html"
    page = page_path.read_text(encoding="utf-8")
    assert page.count(DATA_URI) == len(PLOTS) == 8
    for image in embedded_images(page):
        assert_real_plot(image)
    files = sorted((run / "report" / "index_files").glob("*.png"))
    assert [f.stem for f in files] == sorted(key for key, *_ in PLOTS)
    for f in files:
        assert f.stat().st_size > 10_000
        assert_real_plot(Image.open(f))
    # settings, then first / last / best (training accuracy 12.5% -> 100% first at step 8)
    for text in ("Qwen/Qwen2.5-Math-1.5B", "dsr_sub.parquet (index 124)", "<td>lr</td><td>1e-06</td>",
                 "<td>n</td><td>8</td>", "<td>batch_size</td><td>128</td>", "<td>temperature</td><td>0.6</td>",
                 "12.5% (step 1)", "100.0% (step 12)", "100.0% (step 8)", "25.0% (step 4)", "75.0% (step 12)",
                 "<td>training accuracy first &gt;= 90%</td><td>step 8</td>", "<td>steps logged</td><td>12 of 12</td>",
                 "<td>training time (sum of steps)</td><td>0:02:00</td>", "<td>peak memory</td><td>42.00 GB</td>"):
        assert text in page, text
    # the paper's columns; Avg = (73.6 + 20 + 10 + 50 + 30 + 40) / 6 = 37.3 at step 12, 17.7 at step 4
    assert "<th>step</th><th>MATH500</th><th>AIME24</th><th>AIME25</th><th>AMC23</th><th>Minerva</th>" \
           "<th>Olympiad</th><th>Avg</th>" in page
    assert "<td>12</td><td>73.6%</td><td>20.0%</td><td>10.0%</td><td>50.0%</td><td>30.0%</td><td>40.0%</td>" \
           "<td>37.3%</td>" in page
    assert "<td>4</td><td>36.0%</td><td>10.0%</td>" in page and "<td>17.7%</td>" in page
    assert "<td>12</td><td>36.8%</td>" in page  # strict table: half the lenient accuracy in this run
    # sample responses from the first and last validated steps, escaped
    assert "Step 4: 1 of 4 validation responses right" in page and "Step 12: 3 of 4" in page
    assert "x &lt; y &amp; &lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "Step 8:" not in page
    # self-contained
    assert "<script" not in page and "<link" not in page and "src='http" not in page and 'src="http' not in page


def test_metrics_only_run_renders_with_notes(tmp_path: Path) -> None:
    run = make_run(tmp_path, validation=False, evals=False)
    (run / "history.json").unlink()
    (run / "config.yaml").unlink()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows[5]["kl"] = None  # a non-finite value is written as null
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = write_report(run).read_text(encoding="utf-8")
    assert page.count(DATA_URI) == 6  # saturation (batch accuracy), reward, entropy, kl, length, time
    assert page.count("Not drawn:") == 2
    assert "Not drawn: no validation (val_file) in this run" in page
    assert "Not drawn: no eval results with reflection counts and no validation records" in page
    assert "No config.yaml" in page and "No eval/&lt;step&gt;/results.json" in page
    assert "No validation/step_N.jsonl" in page
    assert "<td>steps logged</td><td>12</td>" in page


def test_a_skipped_plot_leaves_no_stale_image(tmp_path: Path) -> None:
    run = make_run(tmp_path, validation=False)
    write_report(run)
    assert (run / "report/index_files/accuracy.png").exists()
    for results in (run / "eval").rglob("results.json"):
        results.unlink()
    page = write_report(run).read_text(encoding="utf-8")
    assert not (run / "report/index_files/accuracy.png").exists()
    assert page.count(DATA_URI) == 6


def test_cli_prints_the_page_path_and_honours_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path)
    out = tmp_path / "pages" / "pi1.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").count(DATA_URI) == 8
    assert (tmp_path / "pages" / "pi1_files" / "saturation.png").exists()
    assert not (run / "report").exists()


def test_saturation_plot_alone(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    png = plot_saturation(run, tmp_path / "sat" / "saturation.png")
    assert png == tmp_path / "sat" / "saturation.png"
    assert_real_plot(Image.open(png))


def test_saturation_plot_needs_training_accuracy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "entropy": 0.5}) + "\n")
    with pytest.raises(RlvrError, match="no training accuracy"):
        plot_saturation(run, tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


def test_history_epochs_are_placed_at_the_step_that_ends_them(tmp_path: Path) -> None:
    # two steps per epoch: the data position after steps 1..4 is epoch 0, 1, 1, 2
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "epoch": e, "train_accuracy": 0.5} for s, e in ((1, 0), (2, 1), (3, 1), (4, 2))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "history.json").write_text(json.dumps({"a": [0.25, 0.75], "b": [0.5]}))
    data = load_run(run)
    assert data.epoch_end_steps() == [2, 4]
    assert data.example_accuracy() == {"a": ([2, 4], [0.25, 0.75]), "b": ([2], [0.5])}


def test_reflection_counts_come_from_eval_else_validation(tmp_path: Path) -> None:
    source, steps, counts, responses = reflection_counts_by_step(load_run(make_run(tmp_path / "a")))
    assert (source, steps, responses) == ("eval", [4, 12], [60, 60])  # six benchmarks x 10 responses
    assert counts["wait"] == [3, 11] and counts["verify"] == [0, 0]
    # without eval results: each of the 4 validation records says "Wait" and "recheck" once
    source, steps, counts, responses = reflection_counts_by_step(load_run(make_run(tmp_path / "b", evals=False)))
    assert (source, steps, responses) == ("validation", [4, 8, 12], [4, 4, 4])
    assert counts == {"wait": [4, 4, 4], "recheck": [4, 4, 4]}


def test_not_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RlvrError, match=r"empty: not a run folder \(no metrics.jsonl\)"):
        write_report(tmp_path / "empty")
    with pytest.raises(RlvrError, match="no such run folder"):
        write_report(tmp_path / "missing")
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "empty") in err


def test_corrupt_metrics_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps(metrics_row(1)), json.dumps(metrics_row(2)), '{"step": 3, "reward_mean": 0.', ""]
    (run / "metrics.jsonl").write_text("\n".join(lines))
    with pytest.raises(RlvrError, match=re.escape(f"{run / 'metrics.jsonl'}, line 3: not valid JSON")):
        write_report(run)
    assert main(["report", str(run)]) == 2
    assert "metrics.jsonl, line 3" in capsys.readouterr().err


def test_corrupt_eval_results_names_the_file(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "eval" / "12" / "results.json").write_text("{not json")
    with pytest.raises(RlvrError, match=re.escape(str(run / "eval" / "12" / "results.json"))):
        write_report(run)


def test_without_matplotlib_one_line_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RlvrError, match=re.escape("-e '.[plots]'")):
        write_report(run)


def test_paper_columns_match_the_evaluation_registry() -> None:
    from oneshot_rlvr.eval.benchmarks import BENCHMARKS, PAPER_BENCHMARKS
    from oneshot_rlvr.report.rundata import PAPER_COLUMNS

    assert [name for name, _ in PAPER_COLUMNS] == list(PAPER_BENCHMARKS)
    assert [label for _, label in PAPER_COLUMNS] == [BENCHMARKS[n].column for n in PAPER_BENCHMARKS]


def test_long_run_draws_moving_averages(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [{**metrics_row(1), "step": s, "epoch": s, "reward_mean": (s % 7) / 7} for s in range(1, 121)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = write_report(run).read_text(encoding="utf-8")
    assert page.count(DATA_URI) == 6
    from oneshot_rlvr.report.plots import _moving_average

    assert _moving_average([1.0, 3.0, float("nan"), 5.0], 2) == [1.0, 2.0, 3.0, 5.0]
