"""The disturbance the benchmark scripts measure beside (`--disturb`): a neighbour on one core
that streams memory for a second and rests for a second, as a laptop's browser or a cloud VM's
neighbour comes and goes. The scripts share it so that every "disturbed" table means the same."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

# What --disturb does, as its help and the tables say it.
DISTURB_HELP = "measure beside a neighbour that streams memory on one core, a second on, a second off"
DISTURBED = "disturbed (a neighbour streaming 128 MiB on one core, a second on, a second off)"
# Copy two 64 MiB arrays into each other for a second, rest for a second, pinned to one core; end
# with the script that started it, even one killed before it could stop it (it would disturb what
# runs next: a killed script's neighbour once ran on under twelve minutes of later tables).
NEIGHBOUR = """
import os, time, numpy as np
os.sched_setaffinity(0, [CORE])
a, b = np.ones(8 << 20), np.empty(8 << 20)
while os.getppid() == PARENT:
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        np.copyto(b, a); np.copyto(a, b)
    time.sleep(1.0)
"""


@contextmanager
def disturbance(disturb: bool):
    """With `disturb`, the NEIGHBOUR streaming memory on the last core while the block runs."""
    neighbour = None
    if disturb:
        core = (os.cpu_count() or 1) - 1
        script = NEIGHBOUR.replace("CORE", str(core)).replace("PARENT", str(os.getpid()))
        neighbour = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(2)
        if neighbour.poll() is not None:
            sys.exit("the neighbour did not start: its error is above")
    try:
        yield
    finally:
        if neighbour is not None:
            neighbour.kill()
