"""Measurements that chose a setting or explain a missed bar; each is run as a file
(``.venv/bin/python research/NAME.py``)."""
