"""On-demand performance benchmarks (not run by the test suite): ``python -m benchmarks.<name>``."""
