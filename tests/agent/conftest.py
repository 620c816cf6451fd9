from tests.e2e.conftest import live_reef  # noqa: F401 - the live server fixture, shared with end-to-end tests
