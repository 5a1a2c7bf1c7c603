"""Experiments: studies that are not a single run (Table-4 localisation, trait isolation, ...).

Each reuses the runner's pieces (task and method registries, the batch loop with resume and
progress, the results format) and uses methods only through their public API. An experiment is
one module with an ``add_command(subparsers)`` that adds its ``cfbench`` command, plus one line
here; one that makes a paper table adds it to ``TABLES`` here, so ``cfbench table --table NAME``
renders it.
"""
from cfbench.registry import Registry
from cfbench.tables import TABLES

EXPERIMENTS = Registry("experiment")
EXPERIMENTS.add("localize", "cfbench.experiments.localize:add_command", "SLCF Table 4: attribution maps, PF and AUROC")
EXPERIMENTS.add("traits", "cfbench.experiments.traits:add_command", "SLCF Figure 4: isolate the SAE traits a CF changes")
EXPERIMENTS.add("gcd-study", "cfbench.experiments.gcd_study:add_command",
                "GCD Tables 3-5: spread over source images, g vs h-directions, BB-LIG complexity")
EXPERIMENTS.add("shortcut-study", "cfbench.experiments.shortcut_study:add_command",
                "shortcut vs unbiased classifier: which methods edit the background (CECAS vs cecas_no_ls)")

TABLES.add("shortcut", "cfbench.experiments.shortcut_study:TABLE_SHORTCUT",
           "shortcut study: FR, GT_IN, GT_SPUR, S3 per method with a shortcut and an unbiased classifier")
TABLES.add("gcd", "cfbench.experiments.gcd_study:TABLE_GCD", "GCD: g-direction vs the top three h-directions")
TABLES.add("4", "cfbench.experiments.localize:TABLE_4", "localisation of attribution maps (cfbench localize)")
