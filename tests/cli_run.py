"""Running the `edgelstm` command line as a user would: a fresh Python process per call."""
import subprocess
import sys


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgelstm.cli", *map(str, args)], capture_output=True, text=True)
