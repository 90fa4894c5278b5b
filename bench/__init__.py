"""imboy's benchmark harness: `python -m bench <scenario> [options]` (see bench/README.md)."""
