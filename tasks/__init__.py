"""Task registry: synthetic tasks (offline, shipped assets, ground truth) and real-data tasks."""
from cfbench.registry import Registry

TASKS = Registry("task")
for _pair in ("zebra_sorrel", "cheetah_cougar", "egyptian_persian"):
    TASKS.add(f"synth_{_pair}", "cfbench.tasks.synth_tasks:SyntheticTask",
              f"procedural {_pair.replace('_', '/')} pair with ground-truth masks (offline)", pair_name=_pair)
