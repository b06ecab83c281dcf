"""Test-wide settings, read before any test or notebook kernel starts.

The notebook kernels started by nbval inherit this process's environment, so
setting the profile here makes every notebook run its smoke profile.
"""

import os

os.environ.setdefault("BS_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network
os.environ.setdefault("BS_OFFLINE", "1")  # bs_lib downloads refuse the network (tests that fetch opt out)
# One torch thread per test process (and notebook kernel): with two test workers on two cores, every
# extra thread fights a neighbour for a core, and small models then run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
