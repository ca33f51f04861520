package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/vrsky/vrsky/internal/jsonenc"
	"github.com/vrsky/vrsky/runtime/connector"
)

// serveBatch answers a request of a hook with `batch`: the body is split
// into messages (splitBatch), all emitted at once, and the 202 lists
// their ids in the body's order once every one is durable. A body that
// does not split is refused whole with 400 or 413, storing nothing; an
// emit that fails may have stored some, which a retry with the same
// Idempotency-Key stores once (each message's id derives from it).
func (w *webhook) serveBatch(ctx context.Context, emit connector.Emitter, req *connector.HookRequest, stream io.Reader, h connector.Header) (*connector.HookResponse, error) {
	limit := w.cfg.MaxBodyBytes
	if limit == 0 {
		limit = defaultBatchBodyBytes
	}
	data := req.Body
	if stream != nil { // over the API's inline size: read it, up to the limit, to split it
		var err error
		data, err = io.ReadAll(io.LimitReader(stream, limit+1))
		switch {
		case errors.Is(err, errBadSignature):
			return badSignature(), nil
		case errors.Is(err, connector.ErrBodyTooLarge):
			return tooLarge(-1, limit), nil
		case err != nil:
			return errorResponse(http.StatusBadRequest, "bad_body", "body", fmt.Sprintf("the body could not be read: %v", err)), nil
		}
	}
	if int64(len(data)) > limit {
		size := int64(len(data))
		if stream != nil {
			size = -1 // read only up to the limit: its size is unknown
		}
		return tooLarge(size, limit), nil
	}
	bodies, bad := splitBatch(data, w.cfg.Batch.Format, w.cfg.Batch.MaxMessages)
	if bad != nil {
		return bad, nil
	}
	base := idempotencyKey(req.Header.Get("Idempotency-Key"))
	msgs := make([]*connector.Message, len(bodies))
	ct := []string{"application/json"}
	for i, b := range bodies {
		mh := make(connector.Header, len(h)+5) // room for the pipeline's stamps
		for k, v := range h {
			mh[k] = v
		}
		mh["Content-Type"] = ct
		msgs[i] = &connector.Message{ID: batchID(base, i), Header: mh, Data: b}
	}
	if err := emit.EmitBatch(ctx, msgs); err != nil {
		return emitFailed(err, w.cfg.MaxBodyBytes)
	}
	return acceptedBatch(msgs), nil
}

// splitBatch splits body into its messages, each a JSON value with its
// own slice of one copy of body (a message may outlive the request's
// buffer). It refuses, naming the reason, a body that is not format, holds
// no message or more than most.
func splitBatch(body []byte, format string, most int) ([][]byte, *connector.HookResponse) {
	var out [][]byte
	switch format {
	case BatchJSONArray:
		var elems []json.RawMessage // Unmarshal copies each element
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, errorResponse(http.StatusBadRequest, "bad_body", "body",
				fmt.Sprintf("the body is not a JSON array of messages (batch.format %s): %v", format, err))
		}
		out = make([][]byte, len(elems))
		for i, e := range elems {
			out[i] = e
		}
	default: // BatchNDJSON
		buf := bytes.Clone(body)
		for line, rest := 1, buf; len(rest) > 0; line++ {
			var l []byte
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				l, rest = rest[:i], rest[i+1:]
			} else {
				l, rest = rest, nil
			}
			l = bytes.TrimSpace(l) // "\r\n" line ends too
			if len(l) == 0 {
				continue
			}
			if !json.Valid(l) {
				return nil, errorResponse(http.StatusBadRequest, "bad_body", "body",
					fmt.Sprintf("line %d is not a JSON value (batch.format %s: one JSON value per line)", line, format))
			}
			out = append(out, l[:len(l):len(l)]) // capped: an append cannot reach the next line
			if len(out) > most {
				break
			}
		}
	}
	switch {
	case len(out) == 0:
		return nil, errorResponse(http.StatusBadRequest, "bad_body", "body", "the batch holds no messages")
	case len(out) > most:
		return nil, errorResponse(http.StatusRequestEntityTooLarge, "body_too_large", "body",
			fmt.Sprintf("the batch holds more than %d messages, this hook's batch.max_messages", most))
	}
	return out, nil
}

// batchID is the id of a batch's message i when the request carried an
// Idempotency-Key (base, made usable by idempotencyKey): "<base>-<i>", so
// that a retried batch stores each message once; "" (a new id) without.
func batchID(base string, i int) string {
	if base == "" {
		return ""
	}
	id := base + "-" + strconv.Itoa(i)
	if len(id) > 128 {
		return idempotencyKey(id) // hashed, as a key over 128 bytes is
	}
	return id
}

// acceptedBatch is a batch's 202, {"ids":["<id>",…]} in the body's order.
func acceptedBatch(msgs []*connector.Message) *connector.HookResponse {
	body := make([]byte, 0, 9+len(msgs)*(len(msgs[0].ID)+3))
	body = append(body, `{"ids":[`...)
	for i, m := range msgs {
		if i > 0 {
			body = append(body, ',')
		}
		body = jsonenc.AppendString(body, m.ID)
	}
	body = append(body, "]}"...)
	return &connector.HookResponse{Status: http.StatusAccepted, Header: connector.Header{"Content-Type": {"application/json"}}, Body: body}
}
