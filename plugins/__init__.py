"""Op backends shipped in-tree: torch (the reference, any device) and triton (NVIDIA)."""
