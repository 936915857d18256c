"""The study of Mei & Stamp (2025) as benchmarks: nine torchvision models x five compressors.

Importing this package registers nothing. As a pytest plugin (``-p energy_bench.study``, or ``pytest_plugins =
["energy_bench.study"]`` in a root conftest.py) it adds the study's options, parametrization and fixtures
(:mod:`energy_bench.study.plugin`). Needs the ``study`` extra (torch, torchvision, torch-pruning, scikit-learn).
"""

pytest_plugins = ["energy_bench.study.plugin"]
