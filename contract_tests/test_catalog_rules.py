"""The free 422 checks of any endpoint, derived from its catalogue schema (issue 16, point 7).

    pytest contract_tests/test_catalog_rules.py --endpoint fal-ai/flux/dev --endpoint fal-ai/whisper
    FAL_KEY=... pytest contract_tests/test_catalog_rules.py --target live --endpoint fal-ai/flux/dev

Without ``--endpoint`` the checks run for Wan 2.5 image-to-image, the endpoint the mock has a
hand-written module for; other ids run against the mock once it serves every catalogued
endpoint (the generic endpoint), and against fal with ``--target live`` (docs/catalog.md).
Each rule adds a row to the end-of-run drift report.
"""
from __future__ import annotations

import pytest

from contract_tests.catalog_rules import SchemaRule, derive_rules
from contract_tests.conftest import DriftRow
from contract_tests.support import APP, check_error_detail, error_pairs, format_pairs


def _rules(endpoint_ids: list[str]) -> list[SchemaRule]:
    from mock_server.endpoints.catalog import Catalog

    catalog = Catalog()
    rules: list[SchemaRule] = []
    for endpoint_id in endpoint_ids:
        entry = catalog.get(endpoint_id)
        if entry is None:
            raise pytest.UsageError(f"--endpoint {endpoint_id}: not in the catalogue (fal-mock catalog search WORDS)")
        rules += derive_rules(endpoint_id, entry.input_schema)
    return rules


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "schema_rule" not in metafunc.fixturenames:
        return
    endpoint_ids = metafunc.config.getoption("--endpoint") or [APP]
    params = []
    for rule in _rules(endpoint_ids):
        marks = [pytest.mark.validation] + ([pytest.mark.costly] if rule.may_generate else [])
        params.append(pytest.param(rule, id=f"{rule.endpoint_id}:{rule.rule}", marks=marks))
    metafunc.parametrize("schema_rule", params)


def _got(status: int, body, rule: SchemaRule) -> str:
    if rule.agrees(status, body):
        extra = len(error_pairs(body)) - 1
        return "as expected" + (f" (+{extra} more)" if extra > 0 else "")
    if status == 422:
        return "422 " + format_pairs(error_pairs(body))
    return "200 (accepted)" if status == 200 else f"{status} {str(body)[:120]}"


def test_schema_rule(schema_rule: SchemaRule, target, spend, record, drift):
    """The endpoint answers the rule's body with a 422 holding the expected error type at the loc."""
    if schema_rule.may_generate:
        spend(1)  # no other required field to leave out: a service accepting the value would run
    status, body, _ = target.run(schema_rule.body, app=schema_rule.endpoint_id)
    if schema_rule.may_generate and status != 200:
        target.budget.refund(1, f"{schema_rule.rule}: answered {status}, nothing generated")
    record("run", status, body)
    agree = schema_rule.agrees(status, body)
    drift(DriftRow(f"{schema_rule.endpoint_id}:{schema_rule.rule}", "catalogue", schema_rule.expected,
                   _got(status, body, schema_rule), agree))
    if status == 422:
        assert not check_error_detail(body), check_error_detail(body)
    assert agree, f"drift from the catalogue schema: expected {schema_rule.expected}, got {_got(status, body, schema_rule)}"
