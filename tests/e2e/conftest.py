# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The e2e_full marker: the end-to-end tests `make test` leaves out (`make test-e2e` runs them; see test_site.py)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e_full: end-to-end test run by `make test-e2e` only, not by make test's "
                                       "test-e2e-core (its site.yml run does not fit make test's time budget)")
