# Repo-wide test setup only: the end-to-end tests drive pytest itself through pytester.
pytest_plugins = ["pytester"]
