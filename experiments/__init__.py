"""Experiments: the classical baselines and the runner that reproduces the thesis tables and figures."""
