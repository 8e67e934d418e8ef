// The test harness over HTTP, from Node: the journal, the virtual clock and fault
// injection (README "Control API"), driven beside the unmodified @fal-ai/client.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ApiError, createFalClient } from "@fal-ai/client";

import { ENDPOINT, TEST_TIMEOUT_MS, VALID_INPUT, env } from "./support.mjs";

const base = () => env("FAL_MOCK_HARNESS_URL");
// the calls' namespace: the key's id (docs/namespaces.md); fault rules are set for it alone
const namespace = () => env("FAL_KEY").split(":")[0];
const fal = () =>
  createFalClient({
    credentials: env("FAL_KEY"),
    proxyUrl: { url: `${base()}/api/fal/proxy`, when: "always" },
  });

async function control(path, init = {}) {
  const response = await fetch(`${base()}${path}`, {
    ...init,
    headers: { "content-type": "application/json", ...(init.headers ?? {}) },
  });
  assert.ok(response.ok, `${init.method ?? "GET"} ${path} -> ${response.status}`);
  return response.json();
}

beforeEach(async () => {
  // this server is the suite's own: reset every namespace (?namespace=*), which also sets the
  // server's clock back to real time (a namespace's reset leaves the shared clock as it is)
  await control("/_mock/reset?namespace=*", { method: "POST" });
});

test("an action names its namespace: without one it is refused, saying how", { timeout: TEST_TIMEOUT_MS }, async () => {
  const refused = await fetch(`${base()}/_mock/reset`, { method: "POST" });
  assert.equal(refused.status, 400);
  const { detail } = await refused.json();
  assert.match(detail, /\?namespace=NAME/);
  assert.match(detail, /\?namespace=\*/);
});

test("a frozen clock holds a request in the queue until it is advanced", { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = fal();
  const frozen = await control("/_mock/clock", { method: "POST", body: JSON.stringify({ freeze: true }) });
  assert.equal(frozen.frozen, true);
  const { request_id: id } = await client.queue.submit(ENDPOINT, { input: VALID_INPUT });
  assert.equal((await client.queue.status(ENDPOINT, { requestId: id })).status, "IN_QUEUE");
  await control("/_mock/clock", { method: "POST", body: JSON.stringify({ advance: 0.5 }) });
  assert.equal((await client.queue.status(ENDPOINT, { requestId: id })).status, "IN_PROGRESS");
  await control("/_mock/clock", { method: "POST", body: JSON.stringify({ advance: 10 }) });
  const done = await client.queue.status(ENDPOINT, { requestId: id, logs: true });
  assert.equal(done.status, "COMPLETED");
  assert.ok(done.metrics.inference_time >= 2, "the default profile runs 2-4 s on the mock clock");
  const result = await client.queue.result(ENDPOINT, { requestId: id });
  assert.equal(result.data.images.length, 1);
});

test("the journal records each call the client made, key redacted", { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = fal();
  await control("/_mock/config", { method: "POST", body: JSON.stringify({ profile: "instant" }) });
  const { data, requestId } = await client.run(ENDPOINT, { input: { ...VALID_INPUT, seed: 5 } });
  assert.deepEqual(data.seeds, [5]);
  const journal = await control(`/_mock/requests?kind=run`);
  assert.equal(journal.count, 1);
  const [call] = journal.requests;
  assert.equal(call.request_id, requestId);
  assert.equal(call.proxied, true);
  assert.equal(call.target_url, `https://fal.run/${ENDPOINT}`);
  assert.deepEqual(call.body, { ...VALID_INPUT, seed: 5 });
  assert.match(call.headers.authorization, /^Key [^:]+:\*\*\*$/);
  await control("/_mock/config", { method: "POST", body: JSON.stringify({ profile: "default" }) });
});

test("an injected fault reaches the client and is named in the journal", { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = fal();
  await control(`/_mock/faults?namespace=${namespace()}`, {
    method: "POST",
    body: JSON.stringify({ on: "run", kind: "model_error", error_type: "content_policy_violation" }),
  });
  await assert.rejects(client.run(ENDPOINT, { input: VALID_INPUT }), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 422);
    assert.equal(error.body.detail[0].type, "content_policy_violation");
    return true;
  });
  // 500: not among the statuses fal-js retries on submit (429, 502, 503, 504; retry.ts)
  await control(`/_mock/faults?namespace=${namespace()}`, { method: "POST", body: JSON.stringify({ on: "submit", status: 500 }) });
  await assert.rejects(client.queue.submit(ENDPOINT, { input: VALID_INPUT }), (error) => {
    assert.equal(error.status, 500);
    assert.equal(error.body.error_type, "internal_error");
    return true;
  });
  const faults = (await control("/_mock/requests")).requests.map((entry) => entry.fault);
  assert.deepEqual(faults, ["model_error content_policy_violation", "http_error 500"]);
  const rules = (await control(`/_mock/faults?namespace=${namespace()}`)).rules;
  assert.deepEqual(rules.map((rule) => [rule.namespace, rule.fired]), [[namespace(), 1], [namespace(), 1]]);
});
