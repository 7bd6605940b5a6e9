"""The command line: invoke tasks (tasks.py at the repo root) and the `netkeel` script."""
