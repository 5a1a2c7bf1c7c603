import pytest

from cfbench.errors import UserError
from cfbench.method import CounterfactualMethod, hparam_defaults, resolve_hparams
from cfbench.methods import METHODS
from cfbench.metrics import METRICS
from cfbench.metrics.base import Metric
from cfbench.tasks import TASKS
from cfbench.tasks.base import Task


def test_every_entry_loads_and_has_the_right_kind():
    for entry in METHODS.entries():
        cls = entry.load()
        assert issubclass(cls, CounterfactualMethod) and cls.name in METHODS
        resolve_hparams(entry.name, cls, entry.preset, {})  # presets name real hyperparameters
    for entry in METRICS.entries():
        assert issubclass(entry.load(), Metric) and entry.load().name == entry.name
    for entry in TASKS.entries():
        assert issubclass(entry.load(), Task)


def test_unknown_name_suggests_close_match():
    with pytest.raises(UserError, match="Did you mean slcf"):
        METHODS.get("slfc")


def test_hparams_resolve_with_types_and_reject_unknown():
    cls = METHODS.get("slcf").load()
    resolved = resolve_hparams("slcf", cls, {}, {"lr": "0.05", "stage1_steps": "3", "residual": "false"})
    assert resolved["lr"] == 0.05 and resolved["stage1_steps"] == 3 and resolved["residual"] is False
    assert set(resolved) == set(hparam_defaults(cls))
    with pytest.raises(UserError, match="no hyperparameter 'lrr'"):
        resolve_hparams("slcf", cls, {}, {"lrr": "1"})
    with pytest.raises(UserError, match="not a valid int"):
        resolve_hparams("slcf", cls, {}, {"stage1_steps": "many"})


@pytest.mark.parametrize("entry, value, message", [
    ("pixel_ig", {"lr": "-1"}, "Method 'pixel_ig': lr must be > 0"),
    ("slcf", {"lr": "nan"}, "lr must be a finite number"),
    ("slcf", {"stage2_steps": "0"}, "stage2_steps must be at least 1"),
    ("slcf", {"threshold": "1.5"}, "threshold must lie in"),
    ("slcf_lig", {"mask": "blob"}, "mask must be one of lag, lig, ig, none"),
    ("rcsb_c", {"freeform_min": "0.5", "freeform_max": "0.2"}, "freeform_min"),
])
def test_out_of_range_hyperparameters_are_refused_naming_the_entry(entry, value, message):
    e = METHODS.get(entry)
    with pytest.raises(UserError, match=message):
        resolve_hparams(entry, e.load(), e.preset, value)
