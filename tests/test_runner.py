import json
import shutil

import pandas as pd
import pytest

from cfbench.runner import Runner, RunSpec

FAST = ["slcf.stage2_steps=60"]


def spec(out, **kw):
    base = dict(
        task="synth_cheetah_cougar",
        methods=["slcf"],
        n=6,
        batch_size=2,
        seed=3,
        device="cpu",
        out=out,
        metrics="all",
        overrides=FAST,
    )
    base.update(kw)
    return RunSpec(**base)


def comparable(path):
    df = pd.read_parquet(path / "samples.parquet")
    return df.drop(columns=["seconds"])


def test_run_writes_the_results_contract(tmp_path, capfd):
    run = Runner(spec(tmp_path / "r")).execute()
    # the bar shows life within a batch
    assert "stage 1 step 1/25, 2/2 active" in capfd.readouterr().err
    info = json.loads(run.run_json.read_text())
    assert info["finished"] and info["methods"]["slcf"]["stage2_steps"] == 60
    assert {"started", "ended", "versions", "git_commit", "device", "seed", "n"} <= set(info)
    samples = pd.read_parquet(run.samples)
    required = {
        "sample_id",
        "method",
        "source",
        "target",
        "pred_before",
        "pred_after",
        "flipped",
        "steps",
        "nfe",
        "seconds",
        "GT_IN",
        "GT_SPUR",
    }
    assert required <= set(samples.columns) and len(samples) == 6
    metrics = pd.read_csv(run.metrics)
    assert list(metrics.columns[:3]) == ["task", "method", "n"]
    assert metrics.loc[0, "FR"] == pytest.approx(samples["flipped"].mean())
    assert metrics.loc[0, "GT_IN"] == pytest.approx(samples["GT_IN"].mean())
    assert "FR_ci" in metrics and metrics.loc[0, "FID"] > 0 and pd.isna(metrics.loc[0, "FID_ci"])
    for sid in samples["sample_id"]:
        assert (run.images() / f"{sid}.png").exists() and (
            run.images("slcf") / f"{sid}.png"
        ).exists()
        assert (run.masks("slcf") / f"{sid}.png").exists()
    assert (run.figures / "triplets_slcf.png").exists()


def test_a_finished_run_is_left_alone_even_without_its_pngs(tmp_path, capfd):
    run = Runner(spec(tmp_path / "r", n=2, metrics="GT_IN")).execute()
    record = run.run_json.read_text()
    shutil.rmtree(run.root / "images")  # how results/paper/ keeps finished runs
    Runner(spec(tmp_path / "r", n=2, metrics="GT_IN")).execute()
    assert "finished: nothing to do" in capfd.readouterr().err
    assert run.run_json.read_text() == record


def test_interrupted_run_resumes_to_the_same_samples(tmp_path, monkeypatch):
    whole = Runner(spec(tmp_path / "whole")).execute()

    calls = {"n": 0}
    original = Runner._generate_batch

    def dies_on_second_batch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "_generate_batch", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        Runner(spec(tmp_path / "cut")).execute()
    monkeypatch.setattr(Runner, "_generate_batch", original)
    assert not (tmp_path / "cut" / "samples.parquet").exists()

    done_before = set(
        pd.read_parquet(next((tmp_path / "cut" / "parts" / "slcf").glob("*.parquet")))["sample_id"]
    )
    generated = []

    def recording(self, name, method, ids, metrics):
        generated.extend(ids)
        return original(self, name, method, ids, metrics)

    monkeypatch.setattr(Runner, "_generate_batch", recording)
    Runner(spec(tmp_path / "cut")).execute()
    assert not done_before & set(generated), "finished samples were recomputed"
    pd.testing.assert_frame_equal(comparable(whole.root), comparable(tmp_path / "cut"))


def test_resume_refuses_a_different_configuration(tmp_path):
    Runner(spec(tmp_path / "r", n=2)).execute()
    from cfbench.errors import UserError

    with pytest.raises(UserError, match="different settings"):
        Runner(spec(tmp_path / "r", n=2, seed=4))


def test_config_repeats_a_recorded_run_and_says_when_weights_differ(tmp_path, capsys):
    from cfbench.cli import main

    first = Runner(spec(tmp_path / "a", n=2)).execute()
    assert (
        main(
            [
                "run",
                "--config",
                str(first.run_json),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    pd.testing.assert_frame_equal(comparable(first.root), comparable(tmp_path / "b"))
    repeated = json.loads((tmp_path / "b" / "run.json").read_text())
    assert repeated["methods"] == json.loads(first.run_json.read_text())["methods"]
    info = json.loads(first.run_json.read_text())
    info["config"]["components"]["classifier"] = "0" * 16
    first.run_json.write_text(json.dumps(info))
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                "--config",
                str(first.run_json),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert "weights of classifier differ" in capsys.readouterr().err
    assert main(["run", "--config", str(first.run_json), "--task", "synth_zebra_sorrel"]) == 2
    assert main(["run", "--config", str(tmp_path / "nope.json")]) == 2


def test_a_run_of_several_methods_draws_them_side_by_side_and_tables_them(tmp_path, capsys):
    from PIL import Image

    from cfbench.cli import main

    run = Runner(
        spec(tmp_path / "r", methods=["pgd", "other_sample"], n=4, metrics="FR,GT_IN", overrides=[])
    ).execute()
    figure = Image.open(run.figures / "compare.png")
    single = Image.open(run.figures / "triplets_pgd.png")
    assert figure.width > 3 * single.width  # 3 samples x 4 panels against 3 panels
    assert main(["table", str(run.root), "--table", "compare"]) == 0
    shown = capsys.readouterr().out
    assert "| pgd" in shown and "| other_sample" in shown and "GT_IN" in shown
