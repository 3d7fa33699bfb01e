"""Matrix bot tests. A package, so that its conftest does not shadow tests/conftest.py (both are "conftest")."""
