// A client generated from Arbiter's OpenAPI document (openapi-typescript:
// src/schema.d.ts, from proto/openapi/openapi.yaml) makes a decision, a
// pre-send check and an event against a running server. The Go test
// TestTypeScriptClient (cmd/arbiter) starts the server and runs this with
// ARBITER_HTTP set to its HTTP/JSON address; it exits non-zero on any
// failed expectation.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const baseUrl = process.env.ARBITER_HTTP;
if (!baseUrl) {
  throw new Error("set ARBITER_HTTP to the server's HTTP/JSON address, e.g. http://127.0.0.1:8080");
}
const api = createClient<paths>({ baseUrl });

function expect(ok: boolean, what: string): void {
  if (!ok) {
    console.error("FAIL:", what);
    process.exitCode = 1;
  } else {
    console.log("ok:", what);
  }
}

const hcp = "HCP-000042";

// What next for the HCP? Ranked, explained.
const decided = await api.POST("/v1/recipients/{hcp_id}:decide", {
  params: { path: { hcp_id: hcp } },
  body: { limit: 3, explain: true },
});
expect(decided.response.status === 200, `decide answered ${decided.response.status}`);
const recs = decided.data?.recommendations ?? [];
expect(typeof decided.data?.decision_id === "string" && decided.data.decision_id.length > 0, "the decision has an id");
expect(recs.length > 0 && recs.length <= 3, `${recs.length} recommendations, 1 to 3`);

// May the first recommended action be sent now? (A pre-send check.)
const action = recs[0]?.action_id ?? "";
const checked = await api.POST("/v1/recipients/{hcp_id}:checkSend", {
  params: { path: { hcp_id: hcp } },
  body: { action_id: action },
});
expect(checked.response.status === 200, `checkSend answered ${checked.response.status}`);
expect(typeof checked.data?.allowed === "boolean", "the check says allowed or not");
if (checked.data && !checked.data.allowed) {
  expect((checked.data.blocks ?? []).length > 0, "a refused send says what blocks it");
}

// The HCP opened an email: an event, applied once.
const event = {
  event_id: `ts-client-${Date.now()}`,
  hcp_id: hcp,
  type: "EVENT_TYPE_OPENED" as const,
  channel: "CHANNEL_EMAIL" as const,
  occurred_at: new Date().toISOString(),
  decision_id: decided.data?.decision_id,
};
const first = await api.POST("/v1/events", { body: { event } });
expect(first.response.status === 200 && !first.data?.duplicate, "the event is applied");
const again = await api.POST("/v1/events", { body: { event } });
expect(again.response.status === 200 && again.data?.duplicate === true, "the same event again is a duplicate");

// A bad request: the error is a google.rpc.Status with field violations.
const bad = await api.POST("/v1/recipients/{hcp_id}:decide", {
  params: { path: { hcp_id: hcp } },
  body: { limit: -1 },
});
expect(bad.response.status === 400, `a negative limit answered ${bad.response.status}, want 400`);
const details = (bad.error as { details?: { fieldViolations?: { field?: string }[]; field_violations?: { field?: string }[] }[] } | undefined)?.details ?? [];
const fields = details.flatMap((d) => [...(d.field_violations ?? []), ...(d.fieldViolations ?? [])]).map((v) => v.field);
expect(fields.includes("limit"), `the violation names the field (got ${JSON.stringify(fields)})`);
