"""Measurement: the benchmark and the programs that measure one question each, run from the
repository root as `python -m bench.<name>`. They write their reports into bench/reports/. The
product (predict.py, pipelines/, the weight modules, scripts/) never imports this package."""
