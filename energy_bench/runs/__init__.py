"""Saved runs: the energy record written into pytest-benchmark's JSON (:mod:`~energy_bench.runs.record`), reading
saved runs back (:mod:`~energy_bench.runs.parse`), where they are kept (:mod:`~energy_bench.runs.store`), several as
one (:mod:`~energy_bench.runs.pool`), comparing them (:mod:`~energy_bench.runs.compare`) and writing
tables (:mod:`~energy_bench.runs.formats`). Plain Python with numpy/scipy: no pytest, no torch.
"""
