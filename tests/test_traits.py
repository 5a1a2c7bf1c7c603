"""``cfbench traits``: trait isolation writes its figure and numbers, and each edit moves its
feature."""

import json

from cfbench.cli import main


def test_traits_command_writes_figure_and_json(tmp_path):
    rc = main(
        [
            "traits",
            "--task",
            "synth_zebra_sorrel",
            "--sample",
            "00001",
            "--top",
            "2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert (tmp_path / "traits.png").stat().st_size > 1000
    report = json.loads((tmp_path / "traits.json").read_text())
    assert report["sample_id"] == "00001" and len(report["edits"]) == 2
    assert report["edits"][0]["feature"] != report["edits"][1]["feature"]
    for e in report["edits"]:
        # the single-feature edit moved that feature toward its counterfactual value
        assert abs(e["after"] - e["counterfactual"]) < abs(e["before"] - e["counterfactual"])


def test_traits_unknown_task_exits_2(capsys):
    assert main(["traits", "--task", "nope", "--sample", "00001"]) == 2
    assert "Unknown task" in capsys.readouterr().err
