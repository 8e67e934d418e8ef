// The unmodified @fal-ai/client 1.10.1 against fal-mock, through the proxy route
// (PROTOCOL.md §8.2 C): fal.run, the queue calls, validation errors, auth, image files.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ApiError, ValidationError, fal } from "@fal-ai/client";

import {
  ENDPOINT,
  INVALID_INPUT,
  TEST_TIMEOUT_MS,
  VALID_INPUT,
  checkLog,
  checkOutput,
  client,
  env,
  originOf,
  rejection,
} from "./support.mjs";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const opts = { timeout: TEST_TIMEOUT_MS };

describe("fal.run (synchronous run)", () => {
  test("returns {data, requestId} with the images, seeds from the given seed", opts, async () => {
    const fal = client();
    const input = { ...VALID_INPUT, num_images: 2, seed: 42, image_size: "square_hd" };
    const result = await fal.run(ENDPOINT, { input });
    assert.deepEqual(Object.keys(result).sort(), ["data", "requestId"]);
    assert.equal(typeof result.requestId, "string");
    assert.ok(result.requestId.length > 0, "requestId comes from the x-fal-request-id header");
    await checkOutput(result.data, { count: 2, seed: 42, size: { width: 1024, height: 1024 }, origin: originOf() });
  });

  test("defaults: one image, a random integer seed", opts, async () => {
    const { data, requestId } = await client().run(ENDPOINT, { input: VALID_INPUT });
    assert.ok(requestId.length > 0);
    await checkOutput(data, { count: 1, origin: originOf() });
  });

  test("four images, landscape_16_9", opts, async () => {
    const input = { ...VALID_INPUT, num_images: 4, seed: 7, image_size: "landscape_16_9" };
    const { data } = await client().run(ENDPOINT, { input });
    await checkOutput(data, { count: 4, seed: 7, size: { width: 1024, height: 576 }, origin: originOf() });
  });

  test("a 422 surfaces as ValidationError whose fieldErrors name prompt", opts, async () => {
    const error = await rejection(client().run(ENDPOINT, { input: INVALID_INPUT }));
    assert.ok(error instanceof ValidationError, `ValidationError, got ${error?.name}: ${error?.message}`);
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 422);
    assert.ok(Array.isArray(error.body.detail), "body.detail is the pydantic error list");
    assert.deepEqual(error.fieldErrors, error.body.detail);
    for (const item of error.fieldErrors) {
      assert.ok(Array.isArray(item.loc) && item.loc.length > 0, "loc is a non-empty array");
      assert.equal(typeof item.msg, "string");
      assert.equal(typeof item.type, "string");
    }
    const promptErrors = error.getFieldErrors("prompt");
    assert.ok(promptErrors.length >= 1, `an error names prompt: ${JSON.stringify(error.fieldErrors)}`);
    assert.deepEqual(promptErrors[0].loc, ["body", "prompt"]);
    assert.ok(error.getFieldErrors("image_urls").length >= 1, "an empty image_urls is an error too");
    assert.ok(error.requestId.length > 0, "the 422 carries x-fal-request-id");
  });

  test("an unknown endpoint is an ApiError 404, not a ValidationError", opts, async () => {
    const error = await rejection(client().run("fal-ai/no-such-model", { input: VALID_INPUT }));
    assert.ok(error instanceof ApiError);
    assert.ok(!(error instanceof ValidationError));
    assert.equal(error.status, 404);
  });
});

describe("fal.queue (submit, status, result)", () => {
  test("submit + status({logs:true}) + result", opts, async () => {
    const fal = client();
    const input = { ...VALID_INPUT, num_images: 3, seed: 1000, image_size: "portrait_4_3" };
    const submitted = await fal.queue.submit(ENDPOINT, { input });
    assert.equal(submitted.status, "IN_QUEUE");
    assert.match(submitted.request_id, UUID);
    assert.ok(Number.isInteger(submitted.queue_position) && submitted.queue_position >= 0);
    // JS ignores these URLs, Python follows them: they must lead back to this mock
    const requestId = submitted.request_id;
    for (const key of ["response_url", "status_url", "cancel_url"]) {
      assert.equal(new URL(submitted[key]).origin, originOf(), `${key} points at the mock`);
    }
    assert.ok(submitted.response_url.endsWith(`/fal-ai/wan-25-preview/requests/${requestId}`), submitted.response_url);
    assert.equal(submitted.status_url, `${submitted.response_url}/status`);
    assert.equal(submitted.cancel_url, `${submitted.response_url}/cancel`);

    // the instant profile completes by the first status call
    const status = await fal.queue.status(ENDPOINT, { requestId, logs: true });
    assert.equal(status.status, "COMPLETED");
    assert.equal(status.request_id, requestId);
    assert.ok(Array.isArray(status.logs), "logs=1 gives a list");
    status.logs.forEach(checkLog);
    assert.equal(typeof status.metrics?.inference_time, "number");
    assert.ok(status.metrics.inference_time >= 0);

    const quiet = await fal.queue.status(ENDPOINT, { requestId, logs: false });
    assert.equal(quiet.status, "COMPLETED");
    assert.equal(quiet.logs, null, "logs=0 gives logs: null (fal's own test asserts None)");

    const result = await fal.queue.result(ENDPOINT, { requestId });
    assert.equal(result.requestId, requestId);
    await checkOutput(result.data, { count: 3, seed: 1000, size: { width: 768, height: 1024 }, origin: originOf() });

    const again = await fal.queue.result(ENDPOINT, { requestId });
    assert.deepEqual(again, result, "the result is produced once and served the same again");
  });

  test("bad input: submit is accepted, status COMPLETED, result rejects with ValidationError", opts, async () => {
    const fal = client();
    const submitted = await fal.queue.submit(ENDPOINT, { input: INVALID_INPUT });
    assert.equal(submitted.status, "IN_QUEUE");
    const requestId = submitted.request_id;
    assert.match(requestId, UUID);

    const status = await fal.queue.status(ENDPOINT, { requestId, logs: true });
    assert.equal(status.status, "COMPLETED", "fal never reports FAILED; a bad request ends COMPLETED");

    const error = await rejection(fal.queue.result(ENDPOINT, { requestId }));
    assert.ok(error instanceof ValidationError, `ValidationError, got ${error?.name}: ${error?.message}`);
    assert.equal(error.status, 422);
    assert.equal(error.requestId, requestId);
    assert.ok(error.getFieldErrors("prompt").length >= 1, JSON.stringify(error.fieldErrors));
  });

  test("subscribe with a bad input rejects with the ValidationError", opts, async () => {
    let enqueued;
    const error = await rejection(
      client().subscribe(ENDPOINT, { input: INVALID_INPUT, onEnqueue: (id) => (enqueued = id) }),
    );
    assert.ok(error instanceof ValidationError, `ValidationError, got ${error?.name}: ${error?.message}`);
    assert.match(enqueued, UUID);
    assert.equal(error.requestId, enqueued);
    assert.ok(error.getFieldErrors("prompt").length >= 1);
  });

  test("status of an unknown request id is an ApiError 404", opts, async () => {
    const error = await rejection(
      client().queue.status(ENDPOINT, { requestId: "00000000-0000-4000-8000-000000000000", logs: false }),
    );
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 404);
  });

  test("queue.streamStatus resolves done() with the COMPLETED status", opts, async () => {
    const fal = client();
    const { request_id: requestId } = await fal.queue.submit(ENDPOINT, { input: VALID_INPUT });
    const stream = await fal.queue.streamStatus(ENDPOINT, { requestId, logs: true });
    const events = [];
    stream.on("data", (event) => events.push(event));
    const last = await stream.done();
    assert.equal(last.status, "COMPLETED");
    assert.equal(last.request_id, requestId);
    assert.ok(events.length >= 1);
    assert.deepEqual(events.at(-1), last, "done() resolves with the last event");
    assert.equal(stream.requestId, requestId, "the stream answer carries x-fal-request-id");
  });
});

describe("module-level fal.config(...)", () => {
  test("fal.config with proxyUrl {when: 'always'} then fal.subscribe and fal.run", opts, async () => {
    fal.config({
      credentials: env("FAL_KEY"),
      proxyUrl: { url: env("FAL_MOCK_PROXY_URL"), when: "always" },
    });
    const updates = [];
    let enqueued;
    const result = await fal.subscribe(ENDPOINT, {
      input: { ...VALID_INPUT, seed: 5, num_images: 2 },
      logs: true,
      onEnqueue: (id) => (enqueued = id),
      onQueueUpdate: (update) => updates.push(update),
    });
    assert.match(enqueued, UUID);
    assert.equal(result.requestId, enqueued);
    assert.equal(updates.at(-1).status, "COMPLETED");
    await checkOutput(result.data, { count: 2, seed: 5, origin: originOf() });

    const run = await fal.run(ENDPOINT, { input: { ...VALID_INPUT, seed: 9 } });
    assert.ok(run.requestId.length > 0);
    await checkOutput(run.data, { count: 1, seed: 9, origin: originOf() });
  });
});

describe("auth through the proxy", () => {
  test("no credentials: accepted, as fal's server proxy adds its own key", opts, async () => {
    const fal = client("FAL_MOCK_PROXY_URL", { credentials: "" });
    const { data } = await fal.run(ENDPOINT, { input: { ...VALID_INPUT, seed: 3 } });
    await checkOutput(data, { count: 1, seed: 3, origin: originOf() });
  });

  test("a key without a colon is refused with 401", opts, async () => {
    const fal = client("FAL_MOCK_PROXY_URL", { credentials: "not-a-fal-key" });
    const error = await rejection(fal.run(ENDPOINT, { input: VALID_INPUT }));
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 401);
    assert.equal(typeof error.body?.detail, "string");
  });
});
