import subprocess
import sys

import pytest

from cfbench.cli import main


@pytest.mark.parametrize("argv, message", [
    (["run", "--task", "synth_nope", "--methods", "slcf"], "Unknown task"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf,nope"], "Unknown method"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--metrics", "FR,XYZ"], "Unknown metric"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "slcf.lr"], "Malformed --set"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "slcf.nope=1"], "no hyperparameter"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "slcf.stage1_steps=x"], "not a valid int"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "other.lr=1"], "not in --methods"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--n", "0"], "positive"),
    (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--device", "cuda:7"], "CUDA is not available"),
    (["table", "/nonexistent/run"], "not a cfbench run directory"),
])
def test_user_errors_exit_2_with_one_paragraph(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and "Traceback" not in err


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--n", "1",
               "--out", str(blocker / "sub")])
    assert rc == 2 and "Cannot write" in capsys.readouterr().err


def test_console_script_exit_status_is_2():
    proc = subprocess.run([sys.executable, "-m", "cfbench.cli", "list", "methods"], capture_output=True, text=True)
    assert proc.returncode == 0 and "slcf" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "cfbench.cli", "run", "--task", "x", "--methods", "slcf"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
