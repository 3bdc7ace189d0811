"""Fuzz targets: each parser either accepts its input or raises MalformedPacket.

Run one with, for example, ``python -m tests.fuzz.fuzz_rtp 100000``. They are driven by
Hypothesis (no atheris dependency); ``test_fuzz_smoke.py`` runs each briefly under pytest.
"""
