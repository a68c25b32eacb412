"""Experiments runnable from the shell: ``python -m catlib.experiments.<name> --profile full``."""
