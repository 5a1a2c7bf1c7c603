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
