"""Every registered name, one line each: methods, metrics, protocols, tasks, components, synthetic
worlds, tables and experiments.

This is the only place where core names a plugin, and it names it by an import string, so core
never imports a plugin module and ``cfbench list`` starts without loading any. Adding a method,
metric, task or component is one module in its folder plus one line here; a preset (a named
variant with fixed hyperparameters) is a line with keyword arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

from cfbench.errors import UserError
from cfbench.registry import Entry, MethodRegistry, Registry

# fmt: off
# -- methods -------------------------------------------------------------------------------------
SLCF, RCSB = "cfbench.methods.slcf:SLCF", "cfbench.methods.rcsb:RCSB"
GCD, CECAS = "cfbench.methods.gcd:GCD", "cfbench.methods.cecas:CECAS"
METHODS = MethodRegistry("method")
METHODS.add("slcf", SLCF, "SLCF: latent edit with LAG mask (two stages)")
# SLCF ablations (paper Table 3: edit space x mask) and "Ours + SAE": presets of the same class.
METHODS.add("slcf_lag1", SLCF, "SLCF with LAG* (mask from one stage-1 step)", stage1_steps=1)
METHODS.add("slcf_lig", SLCF, "SLCF with latent integrated gradients mask (Eq. 4)", mask="lig")
METHODS.add("slcf_ig", SLCF, "SLCF with pixel IG mask (captum) on the latent grid", mask="ig")
METHODS.add("latent", SLCF, "unmasked latent edit (SLCF without mask)", mask="none")
METHODS.add("pixel", SLCF, "unmasked pixel edit (no autoencoder)", space="pixel", mask="none")
METHODS.add("pixel_ig", SLCF, "pixel edit with pixel IG mask", space="pixel", mask="ig")
METHODS.add("slcf_sae", SLCF, "SLCF + SAE trait-sparsity loss (lambda_t=0.1)", lambda_t=0.1)
# SLCF as released (Imageomics simple-localized-counterfactuals): experiments/configs/cfg_2.py
# `configs` with pipelines/latent_edit.py (the imagenet_paired.py entry point), cfg_1.py (the
# per-pair scripts), and cfg_2's `sae_configs` with pipelines/sae_latent_edit.py (reference from
# the reconstruction, stage 2 on mask-weighted spatial features, L1-mean SAE loss, no trait loss
# in stage 1). Values are in the code's units (units="code" converts them).
_CODE = dict(lr=0.1, lambda_s=0.1, stop_rule="code", confidence=0.95, patience=5, noise=2.0,
             stage2_start="zero", lag_sign="positive", sigma=3.0, threshold=0.5, class_loss="logit",
             roundtrip=True, residual=False, return_noiseless=True, units="code",
             lag_stop_step=False, vae_size=512)
METHODS.add("slcf_code", SLCF, "SLCF as released (cfg_2, imagenet_paired.py)", **_CODE)
METHODS.add("slcf_code_v1", SLCF, "SLCF as released (cfg_1, per-pair scripts)",
            **_CODE | dict(lr=1.0, lambda_s=0.0, confidence=0.9, noise=0.2, lag_sign="abs",
                           sigma=1.0, threshold=0.2))
METHODS.add("slcf_sae_code", SLCF, "SLCF + SAE as released (cfg_2 sae_configs, SAE pipeline)",
            **_CODE | dict(noise=1.0, lambda_t=0.1, sae_reference="reconstruction",
                           sae_features="masked_spatial", sae_loss="mean"))
# RCSB (region-constrained, classifier-guided inpainting on I2SB's bridge): the paper's presets
# A/B/C; rcsb_sgm_*: the paper's ablation with a DDPM (score-based) inpainter instead.
_A = dict(a=0.1, c=4, s=3.0, tau=0.6)
_B, _C = _A | dict(a=0.2, s=1.5), _A | dict(a=0.3, s=1.5)
METHODS.add("rcsb_a", RCSB, "RCSB preset A on I2SB's bridge: IG cells a=0.1, s=3", **_A)
METHODS.add("rcsb_b", RCSB, "RCSB preset B on I2SB's bridge: IG cells a=0.2, s=1.5", **_B)
METHODS.add("rcsb_c", RCSB, "RCSB preset C on I2SB's bridge: IG cells a=0.3, s=1.5", **_C)
METHODS.add("rcsb", RCSB, "RCSB (= rcsb_a)", **_A)
METHODS.add("rcsb_code", RCSB, "RCSB preset A as released: x0_hat min-max stretched per image for "
            "the classifier", **_A, classifier_input="minmax")
METHODS.add("rcsb_sgm_a", RCSB, "RCSB's SGM ablation, preset A: DDPM inpainting, not the bridge",
            prior="sgm", **_A)
METHODS.add("rcsb_sgm_b", RCSB, "RCSB's SGM ablation, preset B", prior="sgm", **_B)
METHODS.add("rcsb_sgm_c", RCSB, "RCSB's SGM ablation, preset C", prior="sgm", **_C)
# GCD (global, black-box directions in a diffusion autoencoder's semantic space); gcd_code: the
# released configs (configs/*.yaml of sobieskibj/gcd) where they differ from the paper's text.
METHODS.add("gcd", GCD, "GCD g-direction (the paper's settings)")
METHODS.add("gcd_code", GCD, "GCD g-direction with the released configs",
            encode_steps=250, decode_steps=100, search_steps=100, n_proxy=1024, blocks=52,
            proxy_epochs=1024, early_stop_from=2, distance_head="sigmoid", lpips_net="vgg",
            g_weights="code", k=128, alpha_max=3.0, radius=1.0, perturbation="uniform_norm",
            proxy_weight=3.0, score="logit", search_rule="pair_weights", lig_path=128,
            lig_gradient="exact", units="raw", hessian_of="f", sign_by="prediction",
            proxy_outputs="logits")
METHODS.add("gcd_h", GCD, "GCD h-direction number `index` (Hessian eigenvector)", direction="h")
METHODS.add("gcd_random", GCD, "control: a random direction searched as GCD", direction="random")
# CECAS (causally guided PGD after purification, spurious term, mask attack, RePaint refinement).
METHODS.add("cecas", CECAS, "CECAS: causally guided PGD + mask + RePaint refinement")
METHODS.add("cecas_no_ls", CECAS, "CECAS without the spurious term L_S", spurious_weight=0.0)
METHODS.add("cecas_shortcut", CECAS, "CECAS with ACE's shortcut gradient past the purification "
            "(no UNet backward; faster, not the paper's)", gradient="shortcut")
METHODS.add("cecas_no_refine", CECAS, "CECAS without refinement (x' is the result)", refine=False)
METHODS.add("pgd", CECAS, "targeted PGD alone (no L_S, no purification, no refinement)",
            spurious_weight=0.0, purify=False, refine=False)
# Controls: what a metric must tell apart from a faithful edit.
METHODS.add("other_sample", "cfbench.methods.controls:OtherSample", "control: the next sample of "
            "the target class (on faces another person)")

# -- attribution maps (methods make masks from them; ``cfbench localize`` scores them) -----------
ATTRIBUTIONS = Registry("attribution")
_MAPS = "cfbench.methods.attributions"
ATTRIBUTIONS.add("lime", f"{_MAPS}:LimeMap", "LIME (captum, 8x8-pixel superpixels, black baseline)")
ATTRIBUTIONS.add("ixg", f"{_MAPS}:InputXGradientMap", "Input x Gradient (captum)")
ATTRIBUTIONS.add("gc", f"{_MAPS}:GradCAMMap", "Grad-CAM (grad-cam) on the last spatial layer")
ATTRIBUTIONS.add("lc", f"{_MAPS}:LayerCAMMap", "LayerCAM (grad-cam) on the last spatial layer")
ATTRIBUTIONS.add("sc", f"{_MAPS}:ScoreCAMMap", "Score-CAM (grad-cam) on the last spatial layer")
ATTRIBUTIONS.add("gig", f"{_MAPS}:GuidedIGMap", "Guided IG (saliency)")
ATTRIBUTIONS.add("gbp", f"{_MAPS}:GuidedBackpropMap", "Guided Backprop (captum)")
ATTRIBUTIONS.add("ig", f"{_MAPS}:IntegratedGradientsMap", "Integrated Gradients (captum, black "
                 "baseline, 50 steps)")
ATTRIBUTIONS.add("lag", f"{_MAPS}:LatentAggregatedGradients", "SLCF's latent aggregated gradients "
                 "(SLCF.explain)")
ATTRIBUTIONS.add("bblig", f"{_MAPS}:BlackBoxLatentIntegratedGradients", "GCD's black-box latent "
                 "integrated gradients (needs a diffusion autoencoder; fits GCD's directions)")

# -- metrics (the name is the metrics.csv column; the class holds every other fact) --------------
METRICS = Registry("metric")
METRICS.add("FR", "cfbench.metrics.validity:FlipRate", "flip rate: the prediction after the edit "
            "is the target")
METRICS.add("COUT", "cfbench.metrics.cout:CounterfactualTransition", "counterfactual transition: "
            "AUPC(target) - AUPC(source)")
METRICS.add("S3", "cfbench.metrics.similarity:SimSiamSimilarity", "cosine similarity of SimSiam "
            "embeddings of x and x_cf")
METRICS.add("FID", "cfbench.metrics.fid:FID", "Frechet distance, originals vs counterfactuals")
METRICS.add("sFID", "cfbench.metrics.fid:SplitFID", "FID across random halves (10 seeded splits)")
METRICS.add("KID", "cfbench.metrics.realism:KID", "kernel distance of the counterfactuals to real "
            "images of the target class (a large reference set), with its standard error")
METRICS.add("Precision", "cfbench.metrics.realism:Precision", "share of counterfactuals inside the "
            "real target images' k-NN manifold (k = 3)")
METRICS.add("Recall", "cfbench.metrics.realism:Recall", "share of real target images inside the "
            "counterfactuals' k-NN manifold (k = 3)")
METRICS.add("Realism", "cfbench.metrics.realism:Realism", "per-sample realism score against the "
            "real target images (above 1: inside their manifold)")
METRICS.add("LPIPS", "cfbench.metrics.perceptual:LPIPS", "LPIPS (AlexNet) between x and x_cf")
METRICS.add("PF", "cfbench.metrics.pixel_flipping:PixelFlipping", "Quantus pixel-flipping AUC of "
            "the method's mask")
METRICS.add("GT_IN", "cfbench.metrics.locality:GroundTruthInside", "share of edit L1 mass in the "
            "causal region")
METRICS.add("GT_SPUR", "cfbench.metrics.locality:GroundTruthSpurious", "share of edit L1 mass on "
            "the background")
METRICS.add("AUROC", "cfbench.metrics.locality:MaskAUROC", "AUROC of the method's mask against the "
            "causal region")
METRICS.add("FVA", "cfbench.metrics.faces:FaceVerification", "face verification accuracy: "
            "identity features of x and x_cf at cosine > 0.5")
METRICS.add("FS", "cfbench.metrics.faces:FaceSimilarity", "face similarity: cosine of identity "
            "features of x and x_cf")
METRICS.add("MNAC", "cfbench.metrics.faces:AttributesChanged", "attributes whose oracle prediction "
            "the edit changed")
METRICS.add("OFR", "cfbench.metrics.oracle:OracleFlipRate", "oracle flip rate: a second network "
            "(class or attribute oracle) reads the target on x_cf")
METRICS.add("CD", "cfbench.metrics.faces:CorrelationDifference", "correlation difference of the "
            "attribute changes from the data's")
METRICS.add("nfe", "cfbench.metrics.cost:ClassifierEvaluations", "classifier forward passes per "
            "counterfactual")
METRICS.add("sec_per_cf", "cfbench.metrics.cost:SecondsPerCounterfactual", "seconds per "
            "counterfactual")

# -- metric protocols (``--protocol``; the default, cfbench, is core's ``Protocol()``) ------------
PROTOCOLS = Registry("protocol")
PROTOCOLS.add("cfbench", "cfbench.api.protocol:CFBENCH", "every metric over all samples (cfbench's "
              "rules)")
PROTOCOLS.add("ace", "cfbench.metrics.protocols:ACE", "ACE / FastDiME evaluation scripts (also "
              "GCD's Table 1, scored with them)")
PROTOCOLS.add("slcf", "cfbench.metrics.protocols:SLCF", "SLCF's released evaluation code")
# fmt: on


# -- tasks ---------------------------------------------------------------------------------------
class TaskRegistry(Registry):
    """Registered tasks, plus task files: ``--task path/to/task.toml`` or the name of a file in
    ``$CFBENCH_TASK_DIR`` (default ``./cfbench_tasks``)."""

    FILE_TASK = "cfbench.tasks.task_file:FileTask"

    @staticmethod
    def task_dir() -> Path:
        return Path(os.environ.get("CFBENCH_TASK_DIR", "cfbench_tasks"))

    def _file(self, name: str) -> Path | None:
        """The task file ``name`` stands for: a path to a .toml file, or NAME in the task folder."""
        if name.endswith(".toml"):
            return Path(name)
        candidate = self.task_dir() / f"{name}.toml"
        return candidate if candidate.is_file() else None

    def get(self, name: str) -> Entry:
        if name in self._entries:
            return self._entries[name]
        path = self._file(name)
        if path is None:
            return super().get(name)
        if not path.is_file():
            raise UserError(f"The task file {path} does not exist.")
        return Entry(name, self.FILE_TASK, {"path": str(path)}, f"task file {path}")

    def build(self, name: str, *args, **kwargs):
        """As ``Registry.build``; a task file's task keeps the name the file gives it."""
        entry = self.get(name)
        if entry.target == self.FILE_TASK:
            return entry.load()(*args, **{**entry.preset, **kwargs})
        return super().build(name, *args, **kwargs)

    def entries(self) -> list[Entry]:
        folder = self.task_dir()
        files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
        return super().entries() + [
            Entry(f.stem, self.FILE_TASK, {"path": str(f)}, f"your task file {f}")
            for f in files
            if f.stem not in self._entries
        ]


# fmt: off
TASKS = TaskRegistry("task")
SYNTH, IMAGENET = "cfbench.tasks.synth_tasks:SyntheticTask", "cfbench.tasks.real:ImageNetPairTask"
CELEBA, CELEBAHQ = "cfbench.tasks.real:CheckpointTask", "cfbench.tasks.real:CelebAHQTask"
FACES = "cfbench.tasks.face_tasks:FaceTask"
TASKS.add("synth_zebra_sorrel", SYNTH, "procedural zebra/sorrel pair with ground-truth masks "
          "(offline)", pair_name="zebra_sorrel")
TASKS.add("synth_cheetah_cougar", SYNTH, "procedural cheetah/cougar pair with ground-truth masks "
          "(offline)", pair_name="cheetah_cougar")
TASKS.add("synth_egyptian_persian", SYNTH, "procedural Egyptian/Persian cat pair with ground-truth "
          "masks (offline)", pair_name="egyptian_persian")
# one direction, as CECAS evaluates them (A.1: the pair's second class edited into its first)
TASKS.add("synth_sorrel_to_zebra", SYNTH, "as synth_zebra_sorrel, only sorrel -> zebra (CECAS's "
          "direction)", pair_name="zebra_sorrel", one_direction=1)
TASKS.add("synth_cougar_to_cheetah", SYNTH, "as synth_cheetah_cougar, only cougar -> cheetah "
          "(CECAS's direction)", pair_name="cheetah_cougar", one_direction=1)
TASKS.add("synth_persian_cat_to_egyptian_cat", SYNTH, "as synth_egyptian_persian, only Persian -> "
          "Egyptian (CECAS's direction)", pair_name="egyptian_persian", one_direction=1)
TASKS.add("sorrel_to_zebra", IMAGENET, "as zebra_sorrel, only sorrel -> zebra (CECAS's direction)",
          pair_name="zebra_sorrel", one_direction=1)
TASKS.add("cougar_to_cheetah", IMAGENET, "as cheetah_cougar, only cougar -> cheetah (CECAS's "
          "direction)", pair_name="cheetah_cougar", one_direction=1)
TASKS.add("persian_to_egyptian", IMAGENET, "as egyptian_persian, only Persian -> Egyptian (CECAS's "
          "direction)", pair_name="egyptian_persian", one_direction=1)
TASKS.add("synth_zebra_sorrel_shortcut", SYNTH, "as synth_zebra_sorrel, explaining a classifier "
          "that relies on a background-tone shortcut", pair_name="zebra_sorrel", shortcut=True)
TASKS.add("synth_cheetah_cougar_shortcut", SYNTH, "as synth_cheetah_cougar, explaining a "
          "classifier that relies on a background-tone shortcut", pair_name="cheetah_cougar",
          shortcut=True)
TASKS.add("synth_egyptian_persian_shortcut", SYNTH, "as synth_egyptian_persian, explaining a "
          "classifier that relies on a background-tone shortcut", pair_name="egyptian_persian",
          shortcut=True)
TASKS.add("zebra_sorrel", IMAGENET, "ImageNet val zebra/sorrel pair, torchvision ResNet-50 (needs "
          "data and weights)", pair_name="zebra_sorrel")
TASKS.add("cheetah_cougar", IMAGENET, "ImageNet val cheetah/cougar pair, torchvision ResNet-50 "
          "(needs data and weights)", pair_name="cheetah_cougar")
TASKS.add("egyptian_persian", IMAGENET, "ImageNet val Egyptian/Persian cat pair, torchvision "
          "ResNet-50 (needs data and weights)", pair_name="egyptian_persian")
TASKS.add("celeba_smile", CELEBA, "CelebA smile (needs data and a classifier checkpoint)",
          task_name="celeba_smile")
TASKS.add("celeba_age", CELEBA, "CelebA age (needs data and a classifier checkpoint)",
          task_name="celeba_age")
TASKS.add("celeba_gender", CELEBA, "CelebA gender, attribute Male (needs data and a classifier "
          "checkpoint)", task_name="celeba_gender")
TASKS.add("celebahq_smile", CELEBAHQ, "CelebA-HQ smile (needs data and a classifier checkpoint)",
          task_name="celebahq_smile")
TASKS.add("celebahq_age", CELEBAHQ, "CelebA-HQ age (needs data and a classifier checkpoint)",
          task_name="celebahq_age")
TASKS.add("celebahq_gender", CELEBAHQ, "CelebA-HQ gender, attribute Male (needs data and a "
          "classifier checkpoint)", task_name="celebahq_gender")
TASKS.add("cub_pair", "cfbench.tasks.real:CubPairTask", "CUB-200-2011 class pair from "
          "CFBENCH_CUB_CLASSES (needs data and a classifier checkpoint)")
TASKS.add("synth_smile", FACES, "procedural faces, not smiling <-> smiling, with ground truth, "
          "identities and attributes (offline)", attribute="Smiling")
TASKS.add("synth_age", FACES, "procedural faces, old <-> young, with ground truth, identities and "
          "attributes (offline)", attribute="Young")

# -- model components (the name is the role tasks declare it under) ------------------------------
COMPONENTS = Registry("component")
COMPONENTS.add("classifier", "cfbench.components.classifier:Classifier", "the classifier under "
               "explanation")
COMPONENTS.add("autoencoder", "cfbench.components.autoencoder:Autoencoder", "diffusers "
               "AutoencoderKL (SLCF's latent)")
COMPONENTS.add("simsiam", "cfbench.components.simsiam:SimSiamEncoder", "SimSiam embedding (S3; FID "
               "on synthetic tasks)")
COMPONENTS.add("sae", "cfbench.components.sae:SparseAutoencoder", "Matryoshka SAE on the "
               "classifier's penultimate features")
COMPONENTS.add("fid_features", "cfbench.components.fid_features:FIDFeatures", "torch-fidelity "
               "extractor for FID/sFID")
COMPONENTS.add("diffusion_prior", "cfbench.components.diffusion_prior:Prior", "pixel-space DDPM "
               "prior: guided-diffusion's ADM or a diffusers pipeline (CECAS; RCSB's SGM ablation)")
COMPONENTS.add("rcsb_bridge", "cfbench.components.i2sb:RCSBBridge", "I2SB's inpainting bridge "
               "(RCSB)")
COMPONENTS.add("diffae", "cfbench.components.diffae:DiffAE", "diffusion autoencoder: z_sem + DDIM "
               "x_T (GCD)")
COMPONENTS.add("spurious_vae", "cfbench.components.spurious_vae:SpuriousFactorVAE", "VAE splitting "
               "penultimate features into causal C and spurious S, with g on S (CECAS)")
COMPONENTS.add("attribute_oracle", "cfbench.components.attribute_oracle:AttributeOracle",
               "a separate network reading every face attribute (MNAC, CD)")
COMPONENTS.add("class_oracle", "cfbench.components.class_oracle:ClassOracle", "a second "
               "classifier of the explained classes, blind to the background shortcut (OFR)")
COMPONENTS.add("lpips", "cfbench.components.lpips:LPIPS", "LPIPS networks on torchvision's "
               "ImageNet backbones (the LPIPS metric, GCD's distance)")
COMPONENTS.add("face_identity", "cfbench.components.face_identity:FaceIdentity", "face-identity "
               "features (FVA, FS)")

# -- built-in classifier kinds (a location of the classifier role; ``cfbench list classifiers``) --
CLASSIFIERS = Registry("classifier kind")
CLASSIFIERS.add("torchvision", "cfbench.components.classifier:Classifier", "torchvision:ARCH:"
                "WEIGHTS, e.g. resnet50:IMAGENET1K_V1 or V2: [0, 1] input resized to 224 "
                "(antialiased bilinear), ImageNet mean/std")
CLASSIFIERS.add("ace-densenet", "cfbench.components.densenet_classifiers:load", "ace-densenet:"
                "celeba:<attribute>:<classifier.pth>: DiME/ACE's CelebA DenseNet-121 (40 logits), "
                "[-1, 1] input at 128 px unresized, logits [0, l_q]")
CLASSIFIERS.add("steex-densenet", "cfbench.components.densenet_classifiers:load", "steex-densenet:"
                "celebahq:<attribute>:<checkpoint>: STEEX's DecisionDensenetModel (Male, Smiling, "
                "Young), [-1, 1] input at 256 px unresized, logits [0, l_q]")

# -- synthetic worlds: the procedural data the shipped assets are trained on ---------------------
WORLDS = Registry("synthetic world")
WORLDS.add("animals", "cfbench.tasks.worlds.animals:ANIMALS", "six procedural animal classes in "
           "three pairs")
WORLDS.add("smile_faces", "cfbench.tasks.worlds.faces:SMILE", "procedural faces, classes Smiling "
           "off / on")
WORLDS.add("age_faces", "cfbench.tasks.worlds.faces:AGE", "procedural faces, classes Young off / "
           "on")
WORLDS.add("faces", "cfbench.tasks.worlds.faces:BOTH", "procedural faces, the four Smiling x "
           "Young kinds")

# -- tables (``cfbench table --table NAME``) -----------------------------------------------------
TABLES = Registry("table")
TABLES.add("1", "cfbench.tables:TABLE_1", "ImageNet layout: FID, sFID, S3, COUT, FR")
TABLES.add("2", "cfbench.tables:TABLE_2", "CelebA layout (SLCF Table 2): FID, sFID, COUT, FR")
TABLES.add("gcd-1", "cfbench.tables:TABLE_GCD_1", "CelebA layout of GCD Table 1: FID, sFID, FVA, "
           "FS, MNAC, CD, COUT, FR")
TABLES.add("compare", "cfbench.tables:TABLE_COMPARE", "the quick start's comparison: FR, COUT, "
           "S3, GT_IN, GT_SPUR, AUROC, nfe, sec_per_cf")
TABLES.add("3", "cfbench.tables:TABLE_3", "SLCF mask ablation (Edit x Mask), with GT_IN")
TABLES.add("4", "cfbench.experiments.localize:TABLE_4", "localisation of attribution maps "
           "(cfbench localize)")
TABLES.add("shortcut", "cfbench.experiments.shortcut_study:TABLE_SHORTCUT", "shortcut study: FR, "
           "GT_IN, GT_SPUR, S3 per method with a shortcut and an unbiased classifier")
TABLES.add("gcd", "cfbench.experiments.gcd_study:TABLE_GCD", "GCD: g-direction vs the top three "
           "h-directions")

# -- experiments: studies that are not a single run, each adding its own ``cfbench`` command -----
EXPERIMENTS = Registry("experiment")
EXPERIMENTS.add("localize", "cfbench.experiments.localize:add_command", "SLCF Table 4: attribution "
                "maps, PF and AUROC")
EXPERIMENTS.add("traits", "cfbench.experiments.traits:add_command", "SLCF Figure 4: isolate the "
                "SAE traits a CF changes")
EXPERIMENTS.add("gcd-study", "cfbench.experiments.gcd_study:add_command", "GCD Tables 3-5: spread "
                "over source images, g vs h-directions, BB-LIG complexity")
EXPERIMENTS.add("shortcut-study", "cfbench.experiments.shortcut_study:add_command", "shortcut vs "
                "unbiased classifier: which methods edit the background (CECAS vs cecas_no_ls)")
EXPERIMENTS.add("slcf-code-ablation", "cfbench.experiments.slcf_code_ablation:add_command", "SLCF: "
                "each difference of the released code switched on alone")
# fmt: on
