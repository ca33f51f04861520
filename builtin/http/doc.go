// Package http holds VRSky's built-in HTTP connectors. Import it as
// httpconn to avoid clashing with net/http.
//
// The http-webhook source (Webhook) turns POSTs to /hooks/{tenant}/{path}
// into durable messages: an optional GitHub-style HMAC-SHA256 check
// (X-Hub-Signature-256), accepted content types, a body size limit (413),
// Idempotency-Key as the message id, 429 on back-pressure. By default it
// answers 202 once the message is durable; in sync mode it waits for the
// steps and answers with what they made of the message (200 passed or
// filtered, 422 failed, 202 pending). With `batch` a request carries
// many messages, NDJSON or a JSON array, stored with one wait and answered
// with their ids.
//
// The http sink (Sink) delivers each message as a request, or, with
// `batch`, a batch as one JSON array (then it is a runtime.BatchSink). The
// URL and header values are templates over the message ({{order.id}},
// {{header:Name}}; see builtin/internal/msgtmpl); requests authenticate
// with a bearer token, basic auth or an HMAC signature of the body; at
// most max_concurrency are in flight, over a keep-alive pool sized to
// match. 2xx is success; 408, 429 and 5xx are retried by the pipeline;
// other 4xx are permanent. Errors quote the status and a one-line summary
// of the response body: its text without markup, at most 200 bytes, with
// its type and size when cut ("(text/html, 1.2 KiB)"). See RATIONALE.md
// for the choices.
package http
