package api

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/runtime"
)

// getMessage answers GET /api/v1/integrations/{name}/messages/{id}: where
// a message of the last 7 days is.
func (s *Server) getMessage(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	id := c.Params("id")
	if !trackableID(id) {
		// Records are keyed by id in a NATS KV bucket: no record can exist
		// for an id outside the key alphabet, and "*" or ">" would be
		// wildcards there, matching other messages' records.
		return notFound("no record of message %q in integration %q: not a message id", id, in.Name)
	}
	tr, err := s.eng.Trace(c.UserContext(), in.Tenant, in.Name, id)
	switch {
	case errors.Is(err, runtime.ErrUnknownMessage):
		return notFound("no record of message %q in integration %q in the last 7 days", id, in.Name)
	case errors.Is(err, runtime.ErrTrackingOff):
		// 404, not 501: there is no record of the message, and the
		// message says why (RATIONALE.md).
		return &Error{Status: fiber.StatusNotFound, Code: CodeNotFound, cause: err,
			Message: fmt.Sprintf("no record of message %q: message tracking is off on this node (vrsky serve --tracking=false)", id)}
	case err != nil:
		return fmt.Errorf("trace message %q of integration %q: %w", id, in.Name, err)
	}
	if tr.Stages == nil {
		tr.Stages = []runtime.StageRecord{}
	}
	return c.JSON(tr)
}

// trackableID reports whether id can name tracking records: 1 to 256 of
// [A-Za-z0-9._=-] (NATS KV key characters; "/" cannot come in one path
// segment).
func trackableID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c == '-' || c == '_' || c == '.' || c == '=' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}
