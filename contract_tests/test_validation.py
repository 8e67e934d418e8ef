"""Validation: every rule of the documented profile, sent through ``fal_client.run`` (the
sync endpoint answers the 422 directly), plus what the profile accepts and the typed
input-image errors.  Each case adds a row to the end-of-run drift report.
"""
from __future__ import annotations

import pytest

from contract_tests.conftest import DriftRow
from contract_tests.rules import ACCEPTED, PROMPT, RULES, TYPED, Case, TypedCase
from contract_tests.support import (
    check_error_detail,
    check_output,
    error_pairs,
    errors_agree,
    format_pairs,
    verify_images,
)


def _describe(status: int, body, expected=None) -> str:
    if status == 422 and expected is not None and errors_agree(expected, body):
        extra = len(error_pairs(body)) - len(expected)
        return "as expected" + (f" (+{extra} more error{'s' if extra > 1 else ''})" if extra > 0 else "")
    if status == 422:
        return "422 " + format_pairs(error_pairs(body))
    if status == 200:
        return "200 (accepted)"
    return f"{status} {str(body)[:120]}"


def _expected(pairs) -> str:
    return "200 (accepted)" if pairs is None else "422 " + format_pairs(pairs)


def _verdict(pairs, status: int, body) -> bool:
    if pairs is None:
        return status == 200
    return status == 422 and errors_agree(pairs, body)


def _param(case: Case):
    marks = [pytest.mark.validation]
    if case.may_generate:
        marks.append(pytest.mark.costly)
    if case.raw:
        marks.append(pytest.mark.raw_http)
    return pytest.param(case, id=case.rule, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in RULES])
def test_documented_rule(case: Case, target, spend, record, drift, observe):
    """A documented-profile rule: 422 with the expected error ``type`` at the expected ``loc``."""
    if case.may_generate:
        spend(1)  # on live, a service following the published schema would generate one image
    if case.raw:
        status, body, headers = target.post_raw(case.body)
    else:
        status, body, headers = target.run(case.body)
    if case.may_generate and status != 200:
        target.budget.refund(1, f"{case.rule}: answered {status}, nothing generated")
    record("run", status, body)
    agree = _verdict(case.expect, status, body)
    drift(DriftRow(case.rule, "raw" if case.raw else "schema", _expected(case.expect), _describe(status, body, case.expect), agree,
                   _verdict(case.published_expect(), status, body), case.note))
    if status == 422:
        observe("x-fal-billable-units on schema 422s", {k.lower(): v for k, v in headers.items()}.get("x-fal-billable-units"))
        assert not check_error_detail(body), check_error_detail(body)
    assert agree, f"drift from the documented profile: expected {_expected(case.expect)}, got {_describe(status, body)}"


@pytest.mark.costly
@pytest.mark.parametrize("case", [pytest.param(c, id=c.rule) for c in ACCEPTED])
def test_documented_profile_accepts(case: Case, target, spend, record, drift):
    """Inputs the documented profile accepts: 200 and an output that honours the contract."""
    spend(case.body.get("num_images", 1))
    status, body, _ = target.run(case.body)
    record("run", status, body)
    drift(DriftRow(case.rule, "accepted", _expected(None), _describe(status, body), status == 200, status == 200, case.note))
    assert status == 200, f"expected the input to be accepted, got {_describe(status, body)}"
    assert not check_output(body, num_images=case.body.get("num_images", 1), prompt=PROMPT), check_output(body)
    problems = verify_images(target.download, body)
    assert not problems, problems


@pytest.mark.costly
@pytest.mark.validation  # ordered with the other 422s that may cost: before the tests that surely generate
@pytest.mark.parametrize("case", [pytest.param(c, id=c.rule) for c in TYPED])
def test_typed_input_image_error(case: TypedCase, target, spend, record, drift):
    """An unusable input image: fal's documented typed error (WAN25.md §3.2) at ``image_urls[0]``,
    with ``url`` = the docs anchor and the documented ``ctx`` keys."""
    spend(1)  # if the service used the image anyway, it would generate one
    status, body, _ = target.run({"prompt": PROMPT, "image_urls": [case.image]})
    if status != 200:
        target.budget.refund(1, f"{case.rule}: answered {status}, nothing generated")
    record("run", status, body)
    agree = status == 422 and errors_agree(case.expect, body)
    drift(DriftRow(case.rule, "typed", _expected(case.expect), _describe(status, body, case.expect), agree))
    assert agree, f"expected {_expected(case.expect)}, got {_describe(status, body)}"
    assert not check_error_detail(body), check_error_detail(body)
    item = next(d for d in body["detail"] if d.get("type") == case.type)
    assert item.get("url") == f"https://docs.fal.ai/errors#{case.type}", item
    for key in case.ctx_keys:
        assert isinstance(item.get("ctx", {}).get(key), int), f"ctx.{key} missing or not an int: {item}"
