import subprocess
import sys

import pytest

from cfbench.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--task", "synth_nope", "--methods", "slcf"], "Unknown task"),
        (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf,nope"], "Unknown method"),
        (
            ["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--metrics", "FR,XYZ"],
            "Unknown metric",
        ),
        (
            ["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "slcf.lr"],
            "Malformed --set",
        ),
        (
            ["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "slcf.nope=1"],
            "no hyperparameter",
        ),
        (
            [
                "run",
                "--task",
                "synth_cheetah_cougar",
                "--methods",
                "slcf",
                "--set",
                "slcf.stage1_steps=x",
            ],
            "is not an integer",
        ),
        (
            ["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--set", "other.lr=1"],
            "not in --methods",
        ),
        (["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--n", "0"], "from 1 to"),
        (
            ["run", "--task", "synth_cheetah_cougar", "--methods", "slcf", "--device", "cuda:7"],
            "CUDA is not available",
        ),
        (["table", "/nonexistent/run"], "not a cfbench run directory"),
    ],
)
def test_user_errors_exit_2_with_one_paragraph(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and "Traceback" not in err


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(
        [
            "run",
            "--task",
            "synth_cheetah_cougar",
            "--methods",
            "slcf",
            "--n",
            "1",
            "--out",
            str(blocker / "sub"),
        ]
    )
    assert rc == 2 and "Cannot write" in capsys.readouterr().err


def test_console_script_exit_status_is_2():
    proc = subprocess.run(
        [sys.executable, "-m", "cfbench.cli", "list", "methods"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "slcf" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "cfbench.cli", "run", "--task", "x", "--methods", "slcf"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_the_cli_imports_an_experiment_only_when_its_command_runs():
    """`cfbench list`, `--help` and the run parser import no plugin module (a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import contextlib, io, sys\n"
        "from cfbench.cli import build_parser, main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['list', 'methods']); build_parser('run'); build_parser(None).format_help()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2][-1] in "
        "('methods', 'metrics', 'tasks', 'components', 'experiments')))\n"
        "build_parser('gcd-study')\n"
        "print('cfbench.experiments.gcd_study' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["[]", "True"]


RUN = ["run", "--task", "synth_cheetah_cougar", "--methods", "slcf"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", "100000000000000000"], "--seed must lie in"),
        (["--seed", "-1"], "--seed must lie in"),
        (["--n", "1000000000"], "from 1 to 1,000,000"),
        (["--shards", "4"], "needs --launcher"),
        (["--batch-size", ""], "--batch-size is empty"),
        (["--device", "cpu:1"], "the CPU takes no index"),
        (["--set", "gcd.k=2.5", "--methods", "gcd"], "not an integer"),
        (["--set", "cecas.iterations=abc", "--methods", "cecas"], "not an integer"),
        (["--set", "cecas.iterations=1.5", "--methods", "cecas"], "not an integer"),
        (["--set", "slcf.residual=maybe"], "true or false"),
        (["--launcher", "slurm", "--shards", "2"], "has no `sbatch`"),
    ],
)
def test_inputs_once_accepted_silently_or_with_a_traceback_are_refused(
    extra, message, capsys, tmp_path
):
    assert main(RUN + extra + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_task_files_name_cannot_lead_a_default_run_directory_elsewhere(tmp_path, monkeypatch):
    from cfbench import guard
    from cfbench.runner import Runner, RunSpec

    monkeypatch.chdir(tmp_path)
    runner = Runner(RunSpec(task="synth_cheetah_cougar", methods=["slcf"], n=1))
    runner.task.name = "../../escape"
    chosen = guard.choose_out(runner.spec.out, runner.task.name, runner.config)
    assert chosen.resolve().parent == (tmp_path / "results" / "runs").resolve()


def test_options_next_to_config_are_applied_and_said(tmp_path, capsys):
    """--config once ignored --n, --seed and --metrics silently: they now change the repeat."""
    from cfbench.runner import RunSpec

    first = tmp_path / "a"
    fast = ["--set", "slcf.stage1_steps=1", "--set", "slcf.stage2_steps=1", "--metrics", "FR"]
    assert main(RUN + ["--n", "2", "--out", str(first), *fast]) == 0
    capsys.readouterr()
    again = tmp_path / "b"
    argv = ["run", "--config", str(first / "run.json"), "--n", "3", "--seed", "5", "--out"]
    assert main(argv + [str(again)]) == 0
    err = capsys.readouterr().err
    assert "--n 3 instead of the recorded 2" in err and "--seed 5 instead of the recorded 0" in err
    spec = RunSpec.from_run_json(again / "run.json")
    assert (spec.n, spec.seed, spec.metrics) == (3, 5, "FR")
