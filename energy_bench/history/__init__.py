"""Over the store: one benchmark's values over commits (:mod:`~energy_bench.history.series`), where they changed
(change points) and the static site that shows them (publish). The search for the commit that did it measures
instead of reading the store: ``energy-bench bisect`` (:mod:`energy_bench.runs.bisect`)."""
