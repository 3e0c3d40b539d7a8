"""The benchmark suite (`python benchmarks/run.py`): one module per row group, a shared timing helper."""
