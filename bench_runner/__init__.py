"""Turns (benchmark, method, backend, size, device, dtype, mode) into stored measurements."""
