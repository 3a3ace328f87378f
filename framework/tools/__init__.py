"""Developer tools behind `zooinfer random-model` and `zooinfer compare`."""
