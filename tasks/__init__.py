"""Task registry: synthetic tasks (offline, shipped assets, ground truth) and real-data tasks."""
from cfbench.registry import Registry

TASKS = Registry("task")
for _pair in ("zebra_sorrel", "cheetah_cougar", "egyptian_persian"):
    TASKS.add(f"synth_{_pair}", "cfbench.tasks.synth_tasks:SyntheticTask",
              f"procedural {_pair.replace('_', '/')} pair with ground-truth masks (offline)", pair_name=_pair)
for _pair in ("zebra_sorrel", "cheetah_cougar", "egyptian_persian"):
    TASKS.add(_pair, "cfbench.tasks.real:ImageNetPairTask",
              f"ImageNet val {_pair.replace('_', '/')} pair, torchvision ResNet-50 (needs data + weights)",
              pair_name=_pair)
for _name in ("celeba_smile", "celeba_age"):
    TASKS.add(_name, "cfbench.tasks.real:CheckpointTask",
              f"CelebA {_name.split('_')[1]} (needs data + a classifier checkpoint)", task_name=_name)
TASKS.add("cub_pair", "cfbench.tasks.real:CubPairTask",
          "CUB-200-2011 class pair from CFBENCH_CUB_CLASSES (needs data + a classifier checkpoint)")
