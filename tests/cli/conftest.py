"""Fixtures for the plugin tests: the operator and the KServe stand-in of the operator tests."""

from tests.operator.conftest import chart_values, operator, operator_identity  # noqa: F401
