"""Test-wide settings, read before any test or notebook kernel starts.

The notebook kernels started by nbval inherit this process's environment, so
setting the profile here makes every notebook run its smoke profile.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("BS_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network
os.environ.setdefault("BS_OFFLINE", "1")  # bs_lib downloads refuse the network (tests that fetch opt out)
os.environ.setdefault("BS_STATIC", "1")  # notebooks draw their interactive figures once, at the defaults
# One torch thread per test process (and notebook kernel): with two test workers on two cores, every
# extra thread fights a neighbour for a core, and small models then run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Training runs of this test process (one folder per pytest-xdist worker), removed at the end: a test or a
# notebook never reuses a run of an earlier session, and two workers never write into the same run.
if "BS_RUNS_DIR" not in os.environ:
    os.environ["BS_RUNS_DIR"] = tempfile.mkdtemp(prefix="bs-test-runs-")
    atexit.register(shutil.rmtree, os.environ["BS_RUNS_DIR"], True)
