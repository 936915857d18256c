"""energy-bench: joules, time and accuracy for pytest-benchmark."""

__version__ = "0.2.0"
