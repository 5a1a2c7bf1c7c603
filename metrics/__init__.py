"""Metric registry: one line per metric; the name is its column in metrics.csv, and the metric's
class holds every other fact about it (direction, display, tolerance, interval; see ``base.py``)."""
from cfbench.registry import Registry

METRICS = Registry("metric")
METRICS.add("FR", "cfbench.metrics.validity:FlipRate", "flip rate: prediction after the edit is the target")
METRICS.add("COUT", "cfbench.metrics.cout:CounterfactualTransition", "counterfactual transition: AUPC(target) - AUPC(source)")
METRICS.add("S3", "cfbench.metrics.similarity:SimSiamSimilarity", "cosine similarity of SimSiam embeddings of x and x_cf")
METRICS.add("FID", "cfbench.metrics.fid:FID", "Frechet distance, originals vs counterfactuals")
METRICS.add("sFID", "cfbench.metrics.fid:SplitFID", "FID across random halves (10 seeded splits)")
METRICS.add("LPIPS", "cfbench.metrics.perceptual:LPIPS", "LPIPS (AlexNet) between x and x_cf")
METRICS.add("PF", "cfbench.metrics.pixel_flipping:PixelFlipping", "Quantus pixel-flipping AUC of the method's mask")
METRICS.add("GT_IN", "cfbench.metrics.locality:GroundTruthInside", "share of edit L1 mass in the causal region")
METRICS.add("GT_SPUR", "cfbench.metrics.locality:GroundTruthSpurious", "share of edit L1 mass on the background")
METRICS.add("AUROC", "cfbench.metrics.locality:MaskAUROC", "AUROC of the method's mask against the causal region")
METRICS.add("nfe", "cfbench.metrics.cost:ClassifierEvaluations", "classifier forward passes per counterfactual")
METRICS.add("sec_per_cf", "cfbench.metrics.cost:SecondsPerCounterfactual", "seconds per counterfactual")
