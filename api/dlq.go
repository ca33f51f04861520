package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/runtime"
)

// Limits of GET .../dlq?limit=.
const (
	dlqDefaultLimit = 50
	dlqMaxLimit     = 1000
)

// deadLetterView is a dead letter as the API shows it. The payload is in
// the answer of GET .../dlq/{id} only: always as payload_base64 (lossless),
// and also as payload_text when it is valid UTF-8 (see RATIONALE.md). A
// claim-checked payload stays in the object store: payload_ref names it.
type deadLetterView struct {
	ID            string            `json:"id"`
	MessageID     string            `json:"message_id"`
	Stage         string            `json:"stage"`
	Error         string            `json:"error"`
	Attempts      int               `json:"attempts"`
	AttemptLog    json.RawMessage   `json:"attempt_log"`
	At            time.Time         `json:"at"`
	Size          int               `json:"size"`
	Headers       map[string]string `json:"headers"`
	PayloadRef    string            `json:"payload_ref,omitempty"`
	PayloadBase64 *string           `json:"payload_base64,omitempty"`
	PayloadText   *string           `json:"payload_text,omitempty"`
}

func viewDeadLetter(dl *runtime.DeadLetter, withPayload bool) deadLetterView {
	v := deadLetterView{
		ID: dl.ID, MessageID: dl.MessageID, Stage: dl.Stage, Error: dl.Error, Attempts: dl.Attempts,
		AttemptLog: dl.AttemptLog, At: dl.At, Size: dl.Size, Headers: dl.Headers,
	}
	if len(v.AttemptLog) == 0 || string(v.AttemptLog) == "null" {
		v.AttemptLog = json.RawMessage("[]")
	}
	if v.Headers == nil {
		v.Headers = map[string]string{}
	}
	if ref := v.Headers[runtime.HeaderPayloadRef]; ref != "" {
		v.PayloadRef = ref
		if n, err := strconv.Atoi(v.Headers[runtime.HeaderPayloadSize]); err == nil {
			v.Size = n
		}
		return v
	}
	if withPayload {
		b64 := base64.StdEncoding.EncodeToString(dl.Payload)
		v.PayloadBase64 = &b64
		if utf8.Valid(dl.Payload) {
			text := string(dl.Payload)
			v.PayloadText = &text
		}
	}
	return v
}

// validStage reports whether s names a stage: "step:<name>",
// "sink:<name>" or "route:<sink>".
func validStage(s string) bool {
	st, err := runtime.ParseStage(s)
	return err == nil && st.Kind != runtime.StageAccepted // dead letters are never of the accepted stage
}

// stageQuery reads the optional ?stage= filter.
func stageQuery(c *fiber.Ctx) (string, error) {
	stage := c.Query("stage")
	if stage != "" && !validStage(stage) {
		return "", badRequest("stage", "stage %q is not a stage: use step:<name>, sink:<name>, route:<sink> or route", stage)
	}
	return stage, nil
}

// dlqError turns an engine error about dead letter id (empty for all of
// them) of integration name into an API error.
func dlqError(err error, name, id string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, runtime.ErrNoDeadLetter) {
		e := notFound("dead letter %q not found in integration %q", id, name)
		e.cause = err
		return e
	}
	if errors.Is(err, runtime.ErrStageGone) {
		return &Error{Status: http.StatusConflict, Code: CodeConflict, cause: err,
			Message: fmt.Sprintf("%v; delete it, or restore the stage and replay it", err)}
	}
	if id == "" {
		return fmt.Errorf("dead letters of integration %q: %w", name, err)
	}
	return fmt.Errorf("dead letter %q of integration %q: %w", id, name, err)
}

// listDeadLetters answers GET .../dlq?stage=&before=&limit=: a page of dead
// letters, newest first, without payloads.
func (s *Server) listDeadLetters(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	f := runtime.DLQFilter{Limit: dlqDefaultLimit}
	if f.Stage, err = stageQuery(c); err != nil {
		return err
	}
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > dlqMaxLimit {
			return badRequest("limit", "limit %q is not a whole number from 1 to %d", q, dlqMaxLimit)
		}
		f.Limit = n
	}
	// Dead-letter ids are positive integers (the runtime's stream
	// sequences); check here so that a bad cursor is the client's 400, not
	// an engine failure.
	if f.Before = c.Query("before"); f.Before != "" {
		if n, err := strconv.ParseUint(f.Before, 10, 64); err != nil || n == 0 {
			return badRequest("before", "before %q is not a dead-letter id: pass the next value of the previous page", f.Before)
		}
	}
	list, next, err := s.eng.ListDeadLetters(c.UserContext(), in.Tenant, in.Name, f)
	if err != nil {
		return dlqError(err, in.Name, "")
	}
	items := make([]deadLetterView, 0, len(list))
	for i := range list {
		items = append(items, viewDeadLetter(&list[i], false))
	}
	return c.JSON(fiber.Map{"items": items, "next": next})
}

// getDeadLetter answers GET .../dlq/{id}: one entry with its payload.
func (s *Server) getDeadLetter(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	id := c.Params("id")
	dl, err := s.eng.GetDeadLetter(c.UserContext(), in.Tenant, in.Name, id)
	if err != nil {
		return dlqError(err, in.Name, id)
	}
	return c.JSON(viewDeadLetter(dl, true))
}

// deleteDeadLetter answers DELETE .../dlq/{id}: the message leaves the
// pipeline for good.
func (s *Server) deleteDeadLetter(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	id := c.Params("id")
	if err := s.eng.DeleteDeadLetter(c.UserContext(), in.Tenant, in.Name, id); err != nil {
		return dlqError(err, in.Name, id)
	}
	return c.SendStatus(http.StatusNoContent)
}

// replayed is the answer of both replay routes.
type replayed struct {
	Replayed int `json:"replayed"`
}

// replayDeadLetter answers POST .../dlq/{id}/replay: the entry goes back
// into the stage that failed and leaves the DLQ, so a second replay of the
// same id answers 404 and the message is delivered once.
func (s *Server) replayDeadLetter(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	spec, err := storedSpec(in)
	if err != nil {
		return err
	}
	id := c.Params("id")
	if err := s.eng.ReplayDeadLetter(c.UserContext(), in.Tenant, spec, id); err != nil {
		return dlqError(err, in.Name, id)
	}
	return c.JSON(replayed{Replayed: 1})
}

// replayDeadLetters answers POST .../dlq/replay?stage=: every entry (of
// one stage, when named) goes back where it failed.
func (s *Server) replayDeadLetters(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	stage, err := stageQuery(c)
	if err != nil {
		return err
	}
	spec, err := storedSpec(in)
	if err != nil {
		return err
	}
	n, err := s.eng.ReplayDeadLetters(c.UserContext(), in.Tenant, spec, stage)
	if err != nil {
		if n > 0 {
			err = fmt.Errorf("replayed %d, then stopped: %w", n, err)
		}
		return dlqError(err, in.Name, "")
	}
	return c.JSON(replayed{Replayed: n})
}
