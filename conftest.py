"""Test-wide settings, read before any test or notebook kernel starts.

The notebook kernels started by nbval inherit this process's environment, so
setting the profile here makes every notebook run its smoke profile.
"""

import os

os.environ.setdefault("BS_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network
