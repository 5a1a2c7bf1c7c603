"""Task registry: synthetic tasks (offline, shipped assets, ground truth), real-data tasks, and
the user's own tasks declared in TOML files (``tasks/task_file.py``)."""
from cfbench.registry import Entry, Registry


class TaskRegistry(Registry):
    """Registered tasks, plus task files: ``--task path/to/task.toml`` or the name of a file in
    ``$CFBENCH_TASK_DIR`` (default ``./cfbench_tasks``)."""

    def get(self, name: str) -> Entry:
        from cfbench.tasks import task_file

        if name in self._entries:
            return self._entries[name]
        path = task_file.find(name)
        if path is None:
            return super().get(name)
        if not path.is_file():
            from cfbench.errors import UserError

            raise UserError(f"The task file {path} does not exist.")
        return Entry(name, "cfbench.tasks.task_file:FileTask", {"path": str(path)}, f"task file {path}")

    def build(self, name: str, *args, **kwargs):
        """As ``Registry.build``; a task file's task keeps the name the file gives it."""
        entry = self.get(name)
        if entry.target.endswith(":FileTask"):
            return entry.load()(*args, **{**entry.preset, **kwargs})
        return super().build(name, *args, **kwargs)

    def entries(self) -> list[Entry]:
        from cfbench.tasks import task_file

        files = sorted(task_file.task_dir().glob("*.toml")) if task_file.task_dir().is_dir() else []
        return super().entries() + [Entry(f.stem, "cfbench.tasks.task_file:FileTask", {"path": str(f)},
                                          f"your task file {f}") for f in files if f.stem not in self._entries]


TASKS = TaskRegistry("task")
for _pair in ("zebra_sorrel", "cheetah_cougar", "egyptian_persian"):
    TASKS.add(f"synth_{_pair}", "cfbench.tasks.synth_tasks:SyntheticTask",
              f"procedural {_pair.replace('_', '/')} pair with ground-truth masks (offline)", pair_name=_pair)
for _pair in ("zebra_sorrel", "cheetah_cougar", "egyptian_persian"):
    TASKS.add(f"synth_{_pair}_shortcut", "cfbench.tasks.synth_tasks:SyntheticTask",
              f"as synth_{_pair}, explaining a classifier that relies on a background-tone shortcut",
              pair_name=_pair, shortcut=True)
for _pair in ("zebra_sorrel", "cheetah_cougar", "egyptian_persian"):
    TASKS.add(_pair, "cfbench.tasks.real:ImageNetPairTask",
              f"ImageNet val {_pair.replace('_', '/')} pair, torchvision ResNet-50 (needs data + weights)",
              pair_name=_pair)
for _name in ("celeba_smile", "celeba_age"):
    TASKS.add(_name, "cfbench.tasks.real:CheckpointTask",
              f"CelebA {_name.split('_')[1]} (needs data + a classifier checkpoint)", task_name=_name)
TASKS.add("cub_pair", "cfbench.tasks.real:CubPairTask",
          "CUB-200-2011 class pair from CFBENCH_CUB_CLASSES (needs data + a classifier checkpoint)")
