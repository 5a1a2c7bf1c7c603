"""The ``Task`` interface: data, the classifier under explanation, and lazily loaded components.

A task declares its components (classifier, autoencoder, SimSiam, ...) as ``{role: location}``; they
load on first use and are cached, so a run that never needs the diffusion prior never loads it. A
component that a task cannot provide raises ``UserError`` naming what is missing and how to provide
it."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch
from torch import nn

from cfbench import seeding
from cfbench.api.types import Batch
from cfbench.errors import UserError
from cfbench.numerics import Numerics


@dataclass
class TaskSamples:
    """Images (N,3,H,W in [0,1]), labels (N,), ids, ground-truth masks (N,1,H,W) if known, and the
    source file of each image where there is one (kept in samples.parquet)."""

    images: torch.Tensor
    labels: torch.Tensor
    sample_ids: list[str]
    gt_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    files: list[str] | None = None


class Task(abc.ABC):
    name: str
    description: str = ""
    class_names: tuple[str, ...]
    pair: tuple[int, int]  # the two classes; each is flipped to the other
    image_size: int
    has_ground_truth: bool = False  # carries causal/object/spurious masks
    # the published benchmark this task is or stands in for ("imagenet/cheetah_cougar",
    # "celeba/smile"): methods look up their paper's per-benchmark settings by it
    benchmark: str = ""
    ground_truth_regions: tuple[str, ...] = ()  # which of them its samples carry

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device = device
        self.numerics: dict[str, Numerics] = {}  # role -> setting (``--dtype``, ``--compile``)

    def set_numerics(self, dtype: str, per_role: dict[str, str], backend: str | None) -> None:
        """How the generative components compute (before they load)."""
        roles = set(per_role) | set(self.declared())
        self.numerics = {r: Numerics(per_role.get(r, dtype), backend) for r in roles}

    # the papers' one-direction subsets (e.g. CECAS A.1: cougar -> cheetah): explain only the pair's
    # class at this position (0 or 1); None explains both directions
    one_direction: int | None = None

    @property
    def explained(self) -> tuple[int, ...]:
        """The classes whose images the task's samples are."""
        return self.pair if self.one_direction is None else (self.pair[self.one_direction],)

    def target_of(self, source: torch.Tensor) -> torch.Tensor:
        """The counterfactual target for each source class (both directions of the pair)."""
        a, b = self.pair
        if not bool(((source == a) | (source == b)).all()):
            raise ValueError(f"task {self.name}: a source class is outside the pair {self.pair}")
        return torch.where(source == a, torch.full_like(source, b), torch.full_like(source, a))

    @abc.abstractmethod
    def sample_ids(self, n: int | None) -> list[str]:
        """The first ``n`` ids of the evaluation split (all when ``n`` is None), in a fixed
        order."""

    @abc.abstractmethod
    def load(self, ids: list[str]) -> TaskSamples:
        """The samples with these ids, in the given order."""

    def batch(self, ids: list[str], seed: int = 0) -> Batch:
        """These samples as a method's input with their seeded generators, as ``cfbench run``
        builds a batch but for the 8-bit rounding of the saved originals (for scripts that call a
        method directly)."""
        s = self.load(ids)
        generators = seeding.generators_for(seed, ids)
        return Batch(s.images, s.labels, self.target_of(s.labels), list(ids), generators=generators)

    # -- components -----------------------------------------------------------------------------
    # role (a component kind) -> location, see cfbench.api.component
    components: dict[str, str] = {}
    # what every task offers unless it declares otherwise (LPIPS networks from torch's hub cache)
    common_components: dict[str, str] = {"lpips": "hub:torchvision"}

    def declared(self) -> dict[str, str]:
        return {**self.common_components, **self.components}

    def component(self, role: str):
        """The task's ``role`` model, loaded on first use, frozen, on the task's device; a UserError
        names what is missing and how to provide it."""
        loaded = self.__dict__.setdefault("_loaded", {})
        if role not in loaded:
            kind = self.component_kind(role)
            location = self.declared()[role]
            where = kind.resolve(location, self.name)
            needs = {r: self.component(r) for r in kind.needs}
            model = kind.load(where, needs, shipped=location.startswith("asset:"))
            if isinstance(model, nn.Module):
                model = _frozen(model).to(self.device)
                if kind.channels_last:
                    model = model.to(memory_format=torch.channels_last)
            if kind.generative and role in getattr(self, "numerics", {}):
                model.numerics = self.numerics[role]
            loaded[role] = model
        return loaded[role]

    def component_kind(self, role: str):
        from cfbench.catalog import COMPONENTS

        if role not in self.declared():
            what = COMPONENTS.get(role).load().what if role in COMPONENTS else role
            raise UserError(f"Task '{self.name}' does not provide {what}.")
        return COMPONENTS.get(role).load()

    def has_component(self, role: str) -> bool:
        """Declared and resolvable (its files exist), without loading it."""
        return role in self.declared() and self.component_kind(role).available(
            self.declared()[role]
        )

    @property
    def classifier(self) -> nn.Module:
        """The classifier under explanation."""
        return self.component("classifier")

    def reference(self, label: int, n: int):
        """Up to ``n`` real images of class ``label`` (realism metrics compare counterfactuals of
        that class with them), as [0, 1] batches. By default the task's own samples of that class
        from the end of its evaluation split, since a run explains it from the start; generated
        tasks render fresh ones."""
        ids = self.sample_ids(None)[::-1]
        found = 0
        for start in range(0, len(ids), 64):
            if found >= n:
                return
            samples = self.load(ids[start : start + 64])
            keep = samples.labels == label
            batch = samples.images[keep][: n - found]
            found += len(batch)
            if len(batch):
                yield batch

    def attribute_correlations(self) -> tuple[tuple[str, ...], torch.Tensor, int] | None:
        """For tasks whose images carry annotated attributes (faces): the attribute names, the
        Pearson correlation of each with the task's attribute over the dataset's annotations
        (ACE's ``get_correlations``), and the task's attribute's index; None elsewhere."""
        return None

    def check(self) -> None:
        """Checks that need the task's models (e.g. that the classifier's outputs match the
        classes), run once before a run's first batch; raise UserError, or print a warning."""
        return None

    def settings(self) -> dict:
        """Facts about the data that change the numbers (for run.json), e.g. a background
        correlation."""
        return {}

    def provenance(self, roles: list[str] | None = None) -> dict:
        """Where each of ``roles`` (default: all declared and available) comes from, with a hash of
        its weights, for run.json, captions and the run's identity."""
        known = self.__dict__.setdefault("_provenance", {})  # hashing large weights once is enough
        for r in roles if roles is not None else self.components:
            if r not in known and self.has_component(r):
                kind = self.component_kind(r)
                location = self.declared()[r]
                known[r] = kind.provenance(location, kind.resolve(location, self.name))
        return {
            r: dict(known[r])
            for r in (roles if roles is not None else self.components)
            if r in known
        }


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
