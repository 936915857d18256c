"""Where saved runs are kept and found, apart from how a run is parsed (:mod:`~energy_bench.runs.parse`) and pooled
(:mod:`~energy_bench.runs.pool`): pytest-benchmark's files (:mod:`~energy_bench.runs.store.files`)."""
