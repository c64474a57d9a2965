"""The seed's benchmarks as a suite: python -m pycsp.bench."""
