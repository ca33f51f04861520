// Package http holds VRSky's built-in HTTP connectors: the http-webhook
// source, which turns POSTs to /hooks/{tenant}/{path} into durable
// messages, and the http sink, which delivers each message as an HTTP
// request. Import it as httpconn to avoid clashing with net/http.
package http
