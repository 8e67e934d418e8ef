// fal.stream against fal-mock: the streaming run is not emulated (docs/not-emulated.md); the
// client must say so with the 501, not fail on the content type.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "@fal-ai/client";

import { ENDPOINT, TEST_TIMEOUT_MS, VALID_INPUT, client } from "./support.mjs";

test("fal.stream rejects with ApiError 501 Not Implemented", { timeout: TEST_TIMEOUT_MS }, async () => {
  const stream = await client().stream(ENDPOINT, { input: VALID_INPUT });
  await assert.rejects(stream.done(), (error) => {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, 501);
    assert.equal(error.message, "HTTP 501: Not Implemented");
    return true;
  });
});
