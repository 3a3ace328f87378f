"""A toy zooinfer backend (see docs/writing-a-backend.md). Importing the package imports nothing: the registry
loads `backend.py` only when the backend is asked for."""
