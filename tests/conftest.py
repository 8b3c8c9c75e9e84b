"""Suite-wide hooks: the native-hang guard (see tests/hang_guard.py), and a private feature cache."""
import atexit
import os
import shutil
import tempfile

from tests.hang_guard import (  # noqa: F401 - pytest finds hooks by name in conftest modules
    pytest_configure,
    pytest_timeout_cancel_timer,
    pytest_timeout_set_timer,
    pytest_unconfigure,
)

# `analyze`, `batch` and the GUI use the on-disk feature cache by default (analysis.analyzer): the
# suite gets its own folder, so it never reads or fills the user's ~/.cache/msa-studio/features.
if "MSA_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="msa-test-cache-")
    os.environ["MSA_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
