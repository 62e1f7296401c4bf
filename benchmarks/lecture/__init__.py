"""The lecture's claims as runnable experiments: ``python -m benchmarks lecture.NAME``."""
