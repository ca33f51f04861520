// Package api serves VRSky's REST API v1 over HTTP with gofiber/fiber/v2:
// tenants and their API keys (admin), integrations of the caller's tenant
// with their message traces and dead letters, the connector catalogue,
// webhook ingress at /hooks/{tenant}/{path}, and the operational endpoints
// /healthz, /readyz, /metrics and /api/v1/openapi.json.
//
// Every handler returns an error; one error handler renders it as
// {"error": {"code": ..., "message": ..., "field": ...}} with a code from the
// catalogue in errors.go. Callers authenticate with
// "Authorization: Bearer <key>": the platform's admin key or a tenant's key,
// which only ever sees its own tenant (another tenant's things answer 404).
//
// The document served at /api/v1/openapi.json (openapi.json, embedded) is
// written by hand; a test fails when it and the registered routes differ.
package api
