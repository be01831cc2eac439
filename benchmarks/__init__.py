"""coatcheck's own benchmark: ``make bench`` (``python -m benchmarks``); see README.md."""
