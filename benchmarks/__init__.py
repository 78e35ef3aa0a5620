"""Benchmarks for gptq_mi100 (run as modules: python -m benchmarks.bench_gemm,
python -m benchmarks.mi100_sheet). See benchmarks/README.md."""
