"""Suite-wide hooks: the native-hang guard (see tests/hang_guard.py)."""
from tests.hang_guard import (  # noqa: F401 - pytest finds hooks by name in conftest modules
    pytest_configure,
    pytest_timeout_cancel_timer,
    pytest_timeout_set_timer,
    pytest_unconfigure,
)
