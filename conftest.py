# Repo-wide test setup: the end-to-end tests drive pytest itself through pytester, and this repository's
# benchmarks/ are the study, whose plugin (options, parametrization, fixtures) is opt-in for everyone else.
pytest_plugins = ["pytester", "energy_bench.study"]
