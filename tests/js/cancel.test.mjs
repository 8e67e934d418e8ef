// fal.queue.cancel (PROTOCOL.md §3.7): 202 CANCELLATION_REQUESTED for a queued request,
// 400 ALREADY_COMPLETED for a finished one, 404 for an unknown id.  The queued case uses the
// slow server (`--profile default --speed 0.01 --workers 1`), where a request waits ~50 s
// in the queue, so it is certainly still queued when the cancel arrives.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, ValidationError } from "@fal-ai/client";

import { ENDPOINT, TEST_TIMEOUT_MS, VALID_INPUT, client, rejection } from "./support.mjs";

const SLOW = "FAL_MOCK_SLOW_PROXY_URL";
const opts = { timeout: TEST_TIMEOUT_MS };

test("cancel of a queued request resolves; the request ends COMPLETED and its result is a 499", opts, async () => {
  const fal = client(SLOW);
  const first = await fal.queue.submit(ENDPOINT, { input: VALID_INPUT });
  const second = await fal.queue.submit(ENDPOINT, { input: { ...VALID_INPUT, seed: 2 } });
  assert.equal(first.status, "IN_QUEUE");
  assert.equal(second.queue_position, first.queue_position + 1, "the second waits behind the first");

  const before = await fal.queue.status(ENDPOINT, { requestId: second.request_id, logs: true });
  assert.equal(before.status, "IN_QUEUE");
  assert.equal(before.queue_position, second.queue_position);

  // the client resolves on 2xx (mock: 202 {"status":"CANCELLATION_REQUESTED"})
  assert.equal(await fal.queue.cancel(ENDPOINT, { requestId: first.request_id }), undefined);

  const moved = await fal.queue.status(ENDPOINT, { requestId: second.request_id, logs: false });
  assert.equal(moved.status, "IN_QUEUE");
  assert.equal(moved.queue_position, second.queue_position - 1, "the cancelled request left the queue");

  const after = await fal.queue.status(ENDPOINT, { requestId: first.request_id, logs: true });
  assert.equal(after.status, "COMPLETED", "fal has no CANCELLED status: a cancelled request ends COMPLETED");

  const error = await rejection(fal.queue.result(ENDPOINT, { requestId: first.request_id }));
  assert.ok(error instanceof ApiError && !(error instanceof ValidationError), `${error?.name}: ${error?.message}`);
  assert.equal(error.status, 499, "fal apps answer a cancelled request with 499");
  assert.equal(error.requestId, first.request_id);

  const twice = await rejection(fal.queue.cancel(ENDPOINT, { requestId: first.request_id }));
  assert.ok(twice instanceof ApiError);
  assert.equal(twice.status, 400, "a cancelled request is already completed");

  await fal.queue.cancel(ENDPOINT, { requestId: second.request_id });
  assert.equal((await fal.queue.status(ENDPOINT, { requestId: second.request_id })).status, "COMPLETED");
});

test("cancel of a completed request rejects with ApiError 400 ALREADY_COMPLETED", opts, async () => {
  const fal = client(); // instant profile
  const { request_id: requestId } = await fal.queue.submit(ENDPOINT, { input: VALID_INPUT });
  assert.equal((await fal.queue.status(ENDPOINT, { requestId })).status, "COMPLETED");

  const error = await rejection(fal.queue.cancel(ENDPOINT, { requestId }));
  assert.ok(error instanceof ApiError, `ApiError, got ${error?.name}: ${error?.message}`);
  assert.equal(error.status, 400);
  assert.equal(error.body?.status, "ALREADY_COMPLETED");

  // the result is unaffected
  const { data } = await fal.queue.result(ENDPOINT, { requestId });
  assert.equal(data.images.length, 1);
});

test("cancel of an unknown request id rejects with ApiError 404", opts, async () => {
  const error = await rejection(
    client().queue.cancel(ENDPOINT, { requestId: "00000000-0000-4000-8000-000000000000" }),
  );
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 404);
});

test("subscribe with a client timeout rejects (the client cancels by itself)", opts, async () => {
  const fal = client(SLOW);
  let enqueued;
  const error = await rejection(
    fal.subscribe(ENDPOINT, {
      input: VALID_INPUT,
      timeout: 300,
      pollInterval: 50,
      onEnqueue: (id) => (enqueued = id),
    }),
  );
  assert.match(String(error?.message), /timed out/);
  assert.equal(typeof enqueued, "string");
  // the client's own cancel is fire-and-forget; cancelling again reaches the same request
  // and finds it either still queued (202) or already cancelled (400): never 404
  const again = await fal.queue.cancel(ENDPOINT, { requestId: enqueued }).then(
    () => 202,
    (e) => e.status,
  );
  assert.ok(again === 202 || again === 400, `cancel after timeout answered ${again}`);
});
