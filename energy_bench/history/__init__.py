"""Over the store: one benchmark's values over commits (:mod:`~energy_bench.history.series`), where they changed
(change points), the static site that shows them (publish) and the search for the commit that did it (bisect)."""
