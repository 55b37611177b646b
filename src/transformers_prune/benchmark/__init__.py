"""Measuring: latency and throughput on real batches, task quality, environment facts."""
