"""The contract suite's per-endpoint 422 checks, derived from the catalogue (issue 16, point 7):
the derivation itself, and ``--endpoint`` selecting any catalogued id from the command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from contract_tests.catalog_rules import derive_rules
from mock_server.endpoints.catalog import Catalog

REPO = Path(__file__).resolve().parent.parent


def _by_name(endpoint_id: str) -> dict:
    return {rule.rule: rule for rule in derive_rules(endpoint_id, Catalog().get(endpoint_id).input_schema)}


def test_rules_follow_the_schemas_required_fields_types_enums_and_ranges():
    rules = _by_name("fal-ai/flux/dev")  # fal's own document: ranges and enums stated
    assert rules["prompt_missing"].body == {} and rules["prompt_missing"].loc == ("body", "prompt")
    assert rules["prompt_missing"].types == {"missing"}
    assert rules["num_images_above_maximum"].body["num_images"] == 5
    assert rules["num_images_above_maximum"].types == {"less_than_equal"}
    assert rules["num_inference_steps_below_minimum"].body["num_inference_steps"] == 0
    assert rules["guidance_scale_above_maximum"].body["guidance_scale"] == 20.5
    assert rules["output_format_bad_enum"].types == {"literal_error", "enum"}
    assert rules["seed_wrong_type"].body["seed"] == "not-a-number"  # nullable integer: T's error
    assert "image_size_wrong_type" not in rules  # a real union: its errors name branches
    # flux has one required field: a rule about another field leaves it out, so fal answers 422
    assert "prompt" not in rules["num_images_above_maximum"].body and not rules["num_images_above_maximum"].may_generate
    assert rules["prompt_wrong_type"].may_generate  # nothing else to leave out: costly on live


def test_every_rule_of_the_whole_catalogue_is_anchored_or_flagged():
    catalog = Catalog()
    count = 0
    for endpoint_id in catalog.ids():
        schema = catalog.get(endpoint_id).input_schema
        required = set(schema.get("required") or []) & set(schema.get("properties") or {})
        for rule in derive_rules(endpoint_id, schema):
            count += 1
            field = rule.loc[1]
            missing = required - set(rule.body)
            assert rule.may_generate or missing, (endpoint_id, rule.rule)
            assert rule.may_generate == (not (required - {field})) or rule.types == {"missing"}, (endpoint_id, rule.rule)
    assert count > 5000


def _collect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           "contract_tests/test_catalog_rules.py", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_endpoint_ids_come_from_the_command_line():
    done = _collect("--endpoint", "fal-ai/flux/dev", "--endpoint", "fal-ai/whisper")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_schema_rule[fal-ai/flux/dev:num_images_above_maximum]" in done.stdout
    assert "test_schema_rule[fal-ai/whisper:audio_url_missing]" in done.stdout
    unknown = _collect("--endpoint", "no/such-endpoint")
    assert unknown.returncode != 0 and "--endpoint no/such-endpoint: not in the catalogue" in unknown.stdout + unknown.stderr
