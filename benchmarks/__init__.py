"""Speed and memory scripts: each is run as a file (``.venv/bin/python benchmarks/NAME.py``)."""
