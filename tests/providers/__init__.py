"""Provider adapter tests: unit tests per adapter plus the shared contract suite."""

import pytest

# contract.py is a helper module, not a test module: ask pytest to rewrite its asserts so
# failures in the shared suite show the compared values.
pytest.register_assert_rewrite("tests.providers.contract")
