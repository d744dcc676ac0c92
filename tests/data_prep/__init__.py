"""Tests of the data_prep converters and benchmark builders."""
