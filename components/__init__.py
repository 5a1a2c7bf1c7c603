"""Model components, one module per kind (see ``cfbench.api.component``): architecture, how a
task loads it, how its shipped synthetic assets are trained, and its provenance. Registered in
``cfbench/catalog.py``."""
