"""torch's "No CUDA runtime is found, using CUDA_HOME=..." notice does not show when percept compiles on a
machine with CUDA's tools but no GPU (issue 19, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys

NOTICE = "No CUDA runtime is found"


def _stderr(code: str, tmp_path) -> str:
    # CUDA_HOME names an existing folder and no GPU is visible: the conditions under which torch logs it.
    env = {**os.environ, "CUDA_HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_percept_imports_cpp_extension_without_the_cuda_home_notice(tmp_path):
    assert NOTICE in _stderr("import torch.utils.cpp_extension", tmp_path)  # what users saw
    code = (
        "import logging, percept.ops.compiling as f; f._import_cpp_extension_quietly(); "
        "import torch.utils.cpp_extension; "
        "assert logging.getLogger('torch.utils.cpp_extension').level == logging.NOTSET"  # level put back
    )
    assert NOTICE not in _stderr(code, tmp_path)
