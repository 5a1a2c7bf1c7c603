"""The synthetic worlds the offline tasks and the shipped assets are drawn from: procedural
animals (``animals``) and faces (``faces``, with its people and drawing), each a
``cfbench.api.world.SyntheticWorld`` registered as ``WORLDS`` in ``cfbench/catalog.py``."""
