"""Tests of the real-data builders (data_prep: Tux-12, Digits-10)."""
