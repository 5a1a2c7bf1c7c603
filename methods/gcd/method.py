"""GCD: Global Counterfactual Directions (Sobieski & Biecek, ECCV 2024), black-box and global.

One direction in the semantic space of a diffusion autoencoder (``components/diffae.py``) is
fitted from a single image and applied to the whole dataset (the abstract: "g-directions allow
for flipping the decision of a given classifier on an entire dataset of images ... with the use
of only single image"): fitted from a sample of the pair's first class and negated for the other
(``share_direction``, as the released ``direction_transfer.py`` negates it for images predicted
as the other class); ``share_direction=false`` fits one per class.

1. Proxy data and proxy (Alg. 1-2, ``proxy.py``): perturbations of the source image's z_sem,
   rendered with its own x_T and scored by f and s; an MLP z -> (f, s) fitted to them, refitted
   ``blocks`` times (the code's ``n_iters``), each time on fresh samples. f (``score``) is a
   score whose sign gives the class: ``margin`` = logit_source - logit_target (the paper), or
   ``logit`` = the logit of the positive class (the pair's second; the attribute of a binary
   task), negated when the source is the negative class (the released
   ``counterfactual_loss_from_general_components.py``); ``pair_prob`` (p(source) among the
   pair's two classes) and ``prob`` (among all classes) are options that saturate.
2. Directions (Alg. 3, ``proxy.directions_of``): g is the gradient of f + lam * s of the proxy at
   z_sem, unit norm, and the edit moves along -g (``g_weights="code"``: one candidate per
   released (w_cls, w_lpips) pair instead); h-directions are eigenvectors of the Hessian of f
   + lam * s (Eq. 4; ``hessian_of="f"``: of f alone, the code), ordered by |eigenvalue|, searched
   on both sides (``h_signs``; an eigenvector's sign is the eigensolver's choice, and the
   released transfer renders a symmetric grid). With more than one candidate (blocks, weight
   pairs) the one whose line search from the source image reaches the lowest search loss is kept
   (the code saves them all for its user to choose).
3. Line search per image over k alphas evenly spaced in [0, alpha_max], along the direction of
   the image's label (``sign_by="prediction"``: of its predicted class, as the released
   transfer) (``search_rule``): ``paper`` takes the alpha with the lowest L_CF = f + lam * s over
   all of them (Eq. 5, Alg. 3); ``pair_weights`` the lowest w_cls * f + w_lpips * s with the
   weight pair the direction came from (the released strategy's line-search loss on its source
   image; the code picks no alpha for other images); ``flipped`` (cfbench's earlier rule) the
   lowest L_CF among renders classified as the target, else the lowest f. The chosen alpha is
   rendered again at ``decode_steps``.
4. Mask: BB-LIG (Alg. 4, ``bblig.py``); ``mask_nfe`` counts the path's classifier calls apart
   from ``nfe``.

Units (``units``): ``raw`` (the paper and code: ``max_norm: 1``, step sizes up to 3) takes r and
alpha in z_sem's own units; ``scaled`` multiplies them by the median distance between the z_sem
codes of the task's first 64 samples, so one setting transfers between encoders (the synthetic
tasks' CPU setting). The classifier is only ever called forward (``BlackBox``); ``nfe`` counts a
sample's own calls, the fit's calls are recorded in run.json and amortised over the samples of
the direction's class when the run is summarised.

s is LPIPS (AlexNet) when torchvision's AlexNet weights are present; otherwise the root-mean-square
pixel distance stands in (named in run.json): neither the SimSiam of S3/FID (that would optimise
the evaluation's feature extractor) nor the classifier (GCD is black-box).

Settings: the defaults are the paper's (encode 100 / decode 250 DDIM steps, N = 8192, k = 128,
alpha_max 3); ``gcd_code`` (its line in ``cfbench/catalog.py``) has the released configs (encode
250 / decode 100, 52 blocks of 1024 samples, norm uniform in [0, r], proxy_weight 3, VGG LPIPS,
the sigmoid s head, early stopping from epoch 2, up to 1024 epochs, the two weight pairs, the
signed logit, a proxy of every class logit and s whose data accumulate over the blocks, the
direction's sign by the predicted class, the line-search loss of each weight pair, the Hessian
of f alone, exact BB-LIG gradients, raw units). Where it still differs from the code: its line
search spends 128 renders over all candidates and six Hessian eigenvectors (here k per
candidate), and its choice among iterations is manual.

Where the diffusion autoencoder is a shipped synthetic stand-in, ``task_defaults`` applies
``CPU_PRESET`` (chosen by measurement) before any preset or ``--set``; run.json records the values.
``gcd_code`` sets its own sizes, which take hours per direction on a CPU: lower them with ``--set``
(``results/paper/gcd_study/README.md`` gives the CPU sizes).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from cfbench.api.method import CounterfactualMethod
from cfbench.methods.gcd.bblig import bb_lig
from cfbench.methods.gcd.params import BACKBONE_NAMES, CPU_PRESET, GCDParams
from cfbench.methods.gcd.proxy import directions_of, proxy_around
from cfbench.results import write_json


class BlackBox:
    """The classifier as GCD may see it: forward only, no gradients, every image counted."""

    def __init__(self, classifier: nn.Module):
        self.classifier = classifier

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images).detach()


def _distance(task, backbone: str, device):
    """(name, s) with s LPIPS when its weights are present, else the RMS pixel distance."""
    net = task.component("lpips").network(backbone, device)
    if net is not None:
        return f"LPIPS ({BACKBONE_NAMES[backbone]})", lambda a, b: net(
            a, b, normalize=True
        ).flatten()
    return (
        f"RMS pixel distance (stand-in for LPIPS: no {BACKBONE_NAMES[backbone]} weights)",
        lambda a, b: ((a - b) ** 2).flatten(1).mean(1).sqrt(),
    )


class GCD(CounterfactualMethod):
    name = "gcd"
    Params = GCDParams

    def __init__(self, task, device, params=None, **hparams):
        super().__init__(task, device, params, **hparams)
        self.dae = task.component("diffae")
        self.classifier = BlackBox(task.classifier)
        # source class -> unit direction (the edit adds it)
        self.directions: dict[int, torch.Tensor] = {}
        self.fit_record: dict = {}
        self._distance = None

    @classmethod
    def task_defaults(cls, task):
        """The measured CPU setting where the diffusion autoencoder is a shipped synthetic
        stand-in."""
        location = task.components.get("diffae", "")
        return dict(CPU_PRESET) if location.startswith("asset:") else {}

    @classmethod
    def requires(cls, params):
        return ("classifier", "diffae")

    # -- scores --------------------------------------------------------------------------------
    def score(
        self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """f: the classifier's evidence for the source class (the search lowers it)."""
        rows = torch.arange(len(logits), device=logits.device)
        if self.hparams.score == "margin":
            return logits[rows, source] - logits[rows, target]
        if self.hparams.score == "logit":  # the positive class's logit, signed by the source
            positive = self.task.pair[1]
            return torch.where(source == positive, logits[:, positive], -logits[:, positive])
        return self.p_source(logits, source, target)

    def p_source(
        self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """p(source) among all classes (``score="prob"``) or among the pair's two (otherwise):
        BB-LIG's integrand and baseline threshold."""
        rows = torch.arange(len(logits), device=logits.device)
        if self.hparams.score == "prob":
            return logits.softmax(1)[rows, source]
        return torch.sigmoid(logits[rows, source] - logits[rows, target])

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """s(x, y): LPIPS when its weights are present, else the RMS pixel distance (a stand-in)."""
        if self._distance is None:
            self._distance = _distance(self.task, self.hparams.lpips_net, self.device)
        with torch.no_grad():
            return self._distance[1](x, y)

    def provenance(self) -> dict:
        self.distance(
            torch.zeros(1, 3, 8, 8, device=self.device), torch.zeros(1, 3, 8, 8, device=self.device)
        )
        found = {"s": self._distance[0], "fit": self.fit_record}
        if self._distance[0].startswith("RMS"):  # numbers change: tables say so
            found["stand_ins"] = {f"{self.name}'s s": self._distance[0]}
        return found

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, sample_ids: list[str], seed: int, store: Path | None) -> dict:
        """Fit one direction per source class (or one, shared) before any sample, or load them
        (``store`` None: keep them in memory only)."""
        if store is not None and (store / "fit.json").exists():
            self.directions, self.fit_record = load_fit(store, self.device)
            return self.fit_record
        h = self.hparams
        if h.direction == "h" and h.index >= self.dae.z_dim:  # before minutes of proxy fitting
            from cfbench.errors import UserError

            raise UserError(
                f"GCD: h-direction index {h.index} is out of range (z_sem has {self.dae.z_dim} "
                f"dimensions, so the indices are 0-{self.dae.z_dim - 1})."
            )
        scale = code_scale(self.task, self.dae, self.device) if h.units == "scaled" else 1.0
        explained = self.task.explained  # a one-direction task fits from its one class
        classes = list(explained[:1] if h.share_direction else explained)
        record = {"z_scale": scale, "directions": {}, "amortised": {}}
        for c in classes:
            t0 = time.perf_counter()
            sid, x = source_image(self.task, sample_ids, c, h.source_index, self.device)
            direction, facts, calls = self._fit_direction(sid, x, c, scale, seed)
            seconds = (
                time.perf_counter()
                - t0
                + (facts["proxy_seconds"] if facts.get("proxy_reused") else 0)
            )
            self.directions[c] = direction
            record["directions"][str(c)] = {
                "source_id": sid,
                **facts,
                "classifier_calls": calls,
                "seconds": round(seconds, 2),
            }
        if h.share_direction:
            (other,) = (c for c in self.task.pair if c != classes[0])
            self.directions[other] = -self.directions[classes[0]]
            record["directions"][str(other)] = {"shared_from": str(classes[0])}
        fitted = [record["directions"][str(c)] for c in classes]
        for c in explained:  # each fit's cost, spread over the samples it edits
            own = record["directions"][str(c)] if c in classes else fitted[0]
            share = 1 / len(explained) if h.share_direction else 1.0
            record["amortised"][str(c)] = {
                "nfe": own.get("classifier_calls", 0) * share,
                "seconds": own.get("seconds", 0.0) * share,
            }
        if store is not None:
            save_fit(store, self.directions, record)
        self.fit_record = record
        return record

    def _fit_direction(
        self, sid: str, x, source: int, scale: float, seed: int
    ) -> tuple[torch.Tensor, dict, int]:
        h = self.hparams
        if h.direction == "random":
            gen = torch.Generator().manual_seed(seed * 1000 + source)
            with torch.no_grad():
                d = torch.randn(self.dae.semantic(x).shape[1], generator=gen)
            return (d / d.norm()).to(self.device), {"kind": "random"}, 0
        candidates = []  # (unit direction, facts)
        for block in range(h.blocks):
            proxy, facts = proxy_around(self, sid, x, source, scale, seed, block)
            for d, own in directions_of(proxy, facts["z_dim"], h):
                candidates.append((d / d.norm(), {**facts, **own, "block": block}))
        calls = h.n_proxy * h.blocks
        if len(candidates) == 1:
            d, facts = candidates[0]
        else:
            losses = self._candidate_losses(x, source, candidates, scale)
            calls += h.k * len(candidates)
            best = min(range(len(candidates)), key=losses.__getitem__)
            d, facts = candidates[best]
            facts = dict(facts, candidate_losses=[round(v, 6) for v in losses])
        return d.to(self.device), facts, calls

    def _candidate_losses(self, x, source: int, candidates, scale: float) -> list[float]:
        """The lowest search loss each candidate (direction, facts) reaches along its line search
        from the source image. The released strategy renders these searches (``post_proxy_loop``)
        and leaves the choice of an iteration's direction to its user; cfbench takes the
        lowest."""
        src = torch.tensor([source], device=self.device)
        tgt = self.task.target_of(src.cpu()).to(self.device)
        z, x_T = self.dae.encode(x, self.hparams.encode_steps)
        losses = []
        for i, (d, facts) in enumerate(candidates):
            self.progress(f"choosing among {len(candidates)} candidates: {i + 1}")
            direction = d.to(self.device).view(1, -1) * scale
            weights = torch.tensor([self._weights(facts)], device=self.device)
            steps = self._line(x, z, x_T, direction, src, tgt, 1.0, weights)
            losses.append(min(float(step["key"][0]) for step in steps))
        return losses

    def _weights(self, facts: dict) -> tuple[float, float]:
        """The (w_f, w_s) pair a direction came from (``search_rule="pair_weights"``)."""
        return tuple(facts.get("weights", (1.0, self.hparams.lam)))

    # -- per sample -----------------------------------------------------------------------------
    def _line(self, x, z, x_T, direction, source, target, sign: float, weights):
        """The line search's renders along ``sign * direction``: per alpha, its value, the render,
        p(source), whether it flipped and the search key (``weights``: each sample's (w_f, w_s)
        pair)."""
        h = self.hparams
        alphas = torch.linspace(0, h.alpha_max, h.k).tolist()
        for a in alphas:
            img = self.dae.decode(z + sign * a * direction, x_T, h.search_steps)
            logits = self.classifier(img)
            flipped = logits.argmax(1) == target
            yield {
                "alpha": sign * a,
                "image": img,
                "p_source": self.p_source(logits, source, target),
                "flipped": flipped,
                "key": self.search_key(logits, source, target, x, img, flipped, weights),
            }

    def search(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> dict:
        """The line search along each sample's class direction: the chosen signed alpha, whether it
        flipped at the search's step count, the BB-LIG baseline (the first alpha on the chosen
        side with p(source) < ``lig_threshold``; NaN when there is none), the codes and the
        classifier calls."""
        h = self.hparams
        scale = self.fit_record["z_scale"]
        z, x_T = self.dae.encode(x, h.encode_steps)
        chooser = source
        if h.sign_by == "prediction":  # the released transfer: by the predicted class
            predicted = self.classifier(x).argmax(1)
            in_pair = (predicted == self.task.pair[0]) | (predicted == self.task.pair[1])
            chooser = torch.where(in_pair, predicted, source)
        direction = torch.stack([self.directions[int(c)] for c in chooser.tolist()]) * scale
        records = [self._fitted_record(int(c)) for c in chooser.tolist()]
        weights = torch.tensor([self._weights(r) for r in records], device=x.device)
        signs = (1.0, -1.0) if h.direction == "h" and h.h_signs == "both" else (1.0,)
        key = torch.full((len(x),), math.inf, device=x.device)  # lower is better
        chosen = torch.zeros(len(x), device=x.device)
        flipped_at = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        image = origin = None  # the chosen render; the render at alpha 0
        baselines = {}
        for sign in signs:
            baseline = torch.full((len(x),), math.nan, device=x.device)
            line = self._line(x, z, x_T, direction, source, target, sign, weights)
            for i, step in enumerate(line):
                self.progress(
                    f"line search {i + 1}/{h.k}" + (f", sign {sign:+.0f}" if len(signs) > 1 else "")
                )
                better = step["key"] < key
                key = torch.where(better, step["key"], key)
                chosen = torch.where(better, torch.full_like(chosen, step["alpha"]), chosen)
                flipped_at = torch.where(better, step["flipped"], flipped_at)
                if image is None:
                    image = origin = step["image"]
                image = torch.where(better.view(-1, 1, 1, 1), step["image"], image)
                first = (step["p_source"] < h.lig_threshold) & baseline.isnan()
                baseline = torch.where(first, torch.full_like(baseline, step["alpha"]), baseline)
            baselines[sign] = baseline
        baseline = torch.where(chosen < 0, baselines.get(-1.0, baselines[1.0]), baselines[1.0])
        return {
            "alpha": chosen,
            "flipped": flipped_at,
            "baseline": baseline,
            "z": z,
            "x_T": x_T,
            "direction": direction,
            "calls": h.k * len(signs) + (h.sign_by == "prediction"),
            "image": image,  # rendered at search_steps
            "origin": origin,
        }

    def _fitted_record(self, c: int) -> dict:
        """The fit record of class ``c``'s direction (the class it was shared from, if so)."""
        directions = self.fit_record.get("directions", {})
        record = directions.get(str(c), {})
        return directions.get(record["shared_from"], {}) if "shared_from" in record else record

    def search_key(self, logits, source, target, x, img, flipped, weights) -> torch.Tensor:
        """What the line search minimises over alpha (``search_rule``)."""
        h = self.hparams
        f = self.score(logits, source, target)
        if h.search_rule == "pair_weights":
            w_f, w_s = weights[:, 0], weights[:, 1]
            return w_f * f + w_s * self.distance(x, img) if bool((w_s != 0).any()) else w_f * f
        loss = f + h.lam * self.distance(x, img)
        if h.search_rule == "paper":
            return loss
        return torch.where(flipped, loss - 1e6, f)  # flips rank first, then the closest to one

    def explain(self, batch) -> torch.Tensor:
        """BB-LIG maps (B,1,H,W) of the batch along its class directions (the method must be
        fitted)."""
        x, source, target = (
            batch.images.to(self.device),
            batch.source.to(self.device),
            batch.target.to(self.device),
        )
        return bb_lig(self, x, self.search(x, source, target), source, target)

    def generate(self, batch):
        from cfbench.api.types import Counterfactuals

        h = self.hparams
        x, source, target = (
            batch.images.to(self.device),
            batch.source.to(self.device),
            batch.target.to(self.device),
        )
        found = self.search(x, source, target)
        masks = bb_lig(self, x, found, source, target)
        if h.decode_steps == h.search_steps:  # the line search rendered the chosen alpha
            final = found["image"]
        else:
            self.progress("final render")
            final = self.dae.decode(
                found["z"] + found["alpha"].view(-1, 1) * found["direction"],
                found["x_T"],
                h.decode_steps,
            )
        n = torch.full((len(x),), found["calls"], device=self.device)
        return Counterfactuals(
            final,
            masks,
            {
                "steps": n,
                "nfe": n,
                "mask_nfe": torch.full_like(n, h.lig_path),
                "alpha_fraction": found["alpha"].abs() / h.alpha_max,
            },
        )


def save_fit(store: Path, directions: dict[int, torch.Tensor], record: dict) -> None:
    """The fitted directions and their record, in a run's ``fitted/`` folder."""
    from safetensors.torch import save_file

    from cfbench.results import atomic_path

    store.mkdir(parents=True, exist_ok=True)
    with atomic_path(store / "directions.safetensors") as tmp:
        save_file({str(c): d.cpu().contiguous() for c, d in directions.items()}, str(tmp))
    write_json(store / "fit.json", record)  # last: its presence means the fit is complete


def load_fit(store: Path, device) -> tuple[dict[int, torch.Tensor], dict]:
    from safetensors.torch import load_file

    directions = load_file(str(store / "directions.safetensors"))
    record = json.loads((store / "fit.json").read_text())
    return {int(c): d.to(device) for c, d in directions.items()}, record


def code_scale(task, dae, device) -> float:
    """Median pairwise distance between the z_sem codes of the task's first 64 samples."""
    x = task.load(task.sample_ids(64)).images.to(device)
    with torch.no_grad():
        z = dae.semantic(x)
    d = torch.cdist(z, z)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def source_image(task, sample_ids: list[str], label: int, index: int, device):
    """(id, image) of the run's ``index``-th sample of class ``label``: the image a direction is
    fitted from."""
    from cfbench.errors import UserError

    seen = 0
    for start in range(0, len(sample_ids), 64):
        samples = task.load(sample_ids[start : start + 64])
        for i, lab in enumerate(samples.labels.tolist()):
            if lab == label:
                if seen == index:
                    return samples.sample_ids[i], samples.images[i : i + 1].to(device)
                seen += 1
    raise UserError(
        f"GCD: source_index {index} asks for sample {index + 1} of class "
        f"'{task.class_names[label]}', but the run has {seen}; lower it or raise --n."
    )
