"""Metric registry: one line per metric; the name is its column in metrics.csv."""
from cfbench.registry import Registry

METRICS = Registry("metric")
METRICS.add("FR", "cfbench.metrics.validity:FlipRate", "flip rate: prediction after the edit is the target")
METRICS.add("GT_IN", "cfbench.metrics.locality:GroundTruthInside", "share of edit L1 mass in the causal region")
METRICS.add("GT_SPUR", "cfbench.metrics.locality:GroundTruthSpurious", "share of edit L1 mass on the background")
METRICS.add("nfe", "cfbench.metrics.cost:ClassifierEvaluations", "classifier forward passes per counterfactual")
METRICS.add("sec_per_cf", "cfbench.metrics.cost:SecondsPerCounterfactual", "seconds per counterfactual")
