import dataclasses

import pytest
from conftest import make_task

from cfbench.api.method import CounterfactualMethod
from cfbench.api.metric import Metric
from cfbench.api.task import Task
from cfbench.catalog import METHODS, METRICS, TASKS
from cfbench.errors import UserError


def test_every_entry_loads_and_has_the_right_kind():
    for entry in METHODS.entries():
        cls = entry.load()
        assert issubclass(cls, CounterfactualMethod) and cls.name in METHODS
        # presets name real hyperparameters of the right types
        METHODS.params(entry.name, make_task())
    for entry in METRICS.entries():
        assert issubclass(entry.load(), Metric) and entry.load().name == entry.name
    for entry in TASKS.entries():
        assert issubclass(entry.load(), Task)


def test_unknown_name_suggests_close_match():
    with pytest.raises(UserError, match="Did you mean slcf"):
        METHODS.get("slfc")


def test_hparams_resolve_with_types_and_reject_unknown():
    params = METHODS.params(
        "slcf", make_task(), {"lr": "0.05", "stage1_steps": "3", "residual": "false"}
    )
    assert params.lr == 0.05 and params.stage1_steps == 3 and params.residual is False
    with pytest.raises(UserError, match="no hyperparameter 'lrr'"):
        METHODS.params("slcf", make_task(), {"lrr": "1"})
    with pytest.raises(UserError, match="'many' is not an integer"):
        METHODS.params("slcf", make_task(), {"stage1_steps": "many"})


@pytest.mark.parametrize(
    "entry, value",
    [
        ("gcd", {"k": "2.5"}),
        ("cecas", {"iterations": "1.5"}),
        ("cecas", {"iterations": "abc"}),
        ("gcd", {"k": 2.5}),
        ("slcf", {"residual": "maybe"}),
        ("slcf", {"stage1_steps": True}),
    ],
)
def test_every_hyperparameter_has_a_declared_type(entry, value):
    with pytest.raises(UserError, match="integer|true or false"):
        METHODS.params(entry, make_task(), value)


def test_task_dependent_values_are_resolved_before_the_run():
    """No field is left for a method to fill in later: run.json records concrete values, the
    task's measured values under the preset and the user's."""
    for name in ("gcd", "gcd_code", "cecas", "pgd"):
        values = dataclasses.asdict(METHODS.params(name, make_task()))
        assert None not in values.values() and "preset" not in values, name
    assert METHODS.params("gcd", make_task()).n_proxy == 1024  # CPU setting on the stand-in DiffAE
    # the preset wins over the task's
    assert METHODS.params("gcd_code", make_task()).encode_steps == 250
    assert METHODS.params("cecas", make_task(), {"iterations": "7"}).iterations == 7


@pytest.mark.parametrize(
    "entry, value, message",
    [
        ("pixel_ig", {"lr": "-1"}, "Method 'pixel_ig': lr must be > 0"),
        ("slcf", {"lr": "nan"}, "lr must be a finite number"),
        ("slcf", {"stage2_steps": "0"}, "stage2_steps must be at least 1"),
        ("slcf", {"threshold": "1.5"}, "threshold must lie in"),
        ("slcf_lig", {"mask": "blob"}, "mask must be one of lag, lig, ig, none"),
        ("rcsb_c", {"freeform_min": "0.5", "freeform_max": "0.2"}, "freeform_min"),
    ],
)
def test_out_of_range_hyperparameters_are_refused_naming_the_entry(entry, value, message):
    with pytest.raises(UserError, match=message):
        METHODS.params(entry, make_task(), value)


def test_a_run_builds_each_methods_params_once(monkeypatch, tmp_path):
    """--set travels one path: read, checked and built into the method's Params once per run."""
    from cfbench.cli import main

    params = METHODS.get("slcf").load().Params
    built = []
    original = params.__post_init__
    monkeypatch.setattr(params, "__post_init__", lambda self: (built.append(1), original(self)))
    argv = [
        "run",
        "--task",
        "synth_cheetah_cougar",
        "--methods",
        "slcf",
        "--n",
        "1",
        "--metrics",
        "FR",
        "--set",
        "slcf.stage1_steps=1",
        "--set",
        "slcf.stage2_steps=1",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0
    assert len(built) == 1
