"""Model families shipped in-tree, one folder each; every one registers through an entry point."""
