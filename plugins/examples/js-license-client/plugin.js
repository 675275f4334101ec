// A Kassa fulfillment plugin in JavaScript: asks the merchant's license service for
// the line's keys. A POST of {"order_id", "line_no", "quantity", "email",
// "idempotency_key"} to the config's `url`, with the secret `api-token` as a bearer
// token, answered with {"licenses": ["…"]}. A 5xx or a network failure is worth
// retrying; a 4xx is not. The same contract as the Rust example `license-client`.
//
// Build:
//   componentize-js plugin.js --wit ../../wit --world-name fulfillment \
//     --disable http fetch-event -o js-license-client.wasm

import { httpFetch, secret, log } from "kassa:plugin/host@0.1.0";

const retryable = (message) => ({ tag: "retryable", val: message });
const permanent = (message) => ({ tag: "permanent", val: message });

export function fulfill(request) {
  const config = new Map(request.config);
  const url = config.get("url");
  if (!url) {
    throw permanent("set the config `url` of the license service");
  }
  const headers = [["content-type", "application/json"]];
  const token = secret("api-token");
  if (token !== undefined) {
    headers.push(["authorization", `Bearer ${token}`]);
  }
  const body = JSON.stringify({
    order_id: request.orderId,
    line_no: request.lineNo,
    quantity: request.quantity,
    email: request.customer.email,
    idempotency_key: request.idempotencyKey,
  });
  let response;
  try {
    response = httpFetch({
      method: "POST",
      url,
      headers,
      body: new TextEncoder().encode(body),
    });
  } catch (e) {
    throw retryable(`the license service is unreachable: ${e.payload ?? e}`);
  }
  log(`license service answered ${response.status}`);
  if (response.status >= 500) {
    throw retryable(`the license service answered ${response.status}`);
  }
  if (response.status < 200 || response.status > 299) {
    throw permanent(`the license service answered ${response.status}`);
  }
  let answer;
  try {
    answer = JSON.parse(new TextDecoder().decode(response.body));
  } catch (e) {
    throw permanent(`the answer is not JSON: ${e}`);
  }
  const licenses = (answer.licenses ?? []).filter((l) => typeof l === "string");
  if (licenses.length === 0) {
    throw permanent("the answer has no licenses");
  }
  return licenses;
}
