package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/internal/claimref"
)

// Claim-check: a payload larger than the threshold (256 KiB by default)
// is written to the object store before the publish, and the message
// carries Vrsky-Payload-Ref, -Size and -Sha256 instead of the bytes.
// Connectors read payloads through Message.Body, which streams the object
// and checks its digest at the end.
//
// An object is deleted once every sink it was routed to has delivered it:
// each routed sink holds a marker key in the KV bucket vrsky_claims; a sink
// that delivers removes its marker and, finding none left, deletes the
// object. A dead-lettered message keeps its marker until it is replayed
// and delivered, or deleted from the DLQ.

// DefaultClaimThreshold is the largest payload that travels inline.
const DefaultClaimThreshold = 256 << 10

const claimBucket = "vrsky_claims"

var (
	// ErrPayloadStore: the object store could not take or give a payload.
	ErrPayloadStore = connector.ErrPayloadStore
	// ErrPayloadCorrupt: a claim-checked payload does not match its digest.
	ErrPayloadCorrupt = connector.ErrPayloadCorrupt
)

type claims struct {
	blobs     blob.Store
	markers   jetstream.KeyValue
	threshold int
}

func newClaims(ctx context.Context, js jetstream.JetStream, replicas int, blobs blob.Store, threshold int) (*claims, error) {
	kv, err := natsx.Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      claimBucket,
			Description: "VRSky claim-check markers: which sinks still need a payload object",
			TTL:         DLQRetention + 24*time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("claim-check bucket: %w", err)
	}
	if threshold <= 0 {
		threshold = DefaultClaimThreshold
	}
	return &claims{blobs: blobs, markers: kv, threshold: threshold}, nil
}

func claimKey(tenant, integration, id string) string {
	return claimPrefix(tenant) + integration + "/" + id
}

// PayloadPrefix starts the key of every claim-checked payload object (the
// runtime's and those Wasm steps emit), so a server may keep them apart
// from the other objects (blob.Split).
const PayloadPrefix = connector.PayloadPrefix

// claimPrefix starts the key of every claim-check object of a tenant.
func claimPrefix(tenant string) string { return PayloadPrefix + tenant + "/" }

// ErrPayloadRef: a message names a payload object that is not one of its
// tenant's, or names it in a form that could mean another (a "..", "."
// or empty segment, a path that does not clean to itself). Errors that
// wrap it are Permanent: the same reference is refused every time.
var ErrPayloadRef = errors.New("payload reference refused")

// checkPayloadRef vets a payload reference that a step wrote, before the
// pipeline trusts it with a marker, a read or a delete. The reference must
// be a valid object key (blob.ValidateKey: no empty, "." or ".." segment),
// be its own path.Clean form, start with the tenant's payload prefix
// (payloads/<tenant>/) with at least one segment after it, and make a
// valid marker key: a segment may not begin or end with '.' nor hold
// "..", which would put an empty token in its vrsky_claims key. Anything
// else is refused, whole, as a Permanent ErrPayloadRef: a reference is
// never repaired into another one.
func checkPayloadRef(tenant, ref string) error {
	refuse := func(why string) error {
		return Permanent(fmt.Errorf("%w: %s %q: %s", ErrPayloadRef, HeaderPayloadRef, ref, why))
	}
	if err := blob.ValidateKey(ref); err != nil {
		return refuse(err.Error())
	}
	if path.Clean(ref) != ref {
		return refuse("not a clean path")
	}
	prefix := claimPrefix(tenant)
	rest, ok := strings.CutPrefix(ref, prefix)
	if tenant == "" || !ok || rest == "" {
		return refuse("not one of the tenant's payload objects (" + prefix + "…)")
	}
	for _, seg := range strings.Split(rest, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".") || strings.Contains(seg, "..") {
			return refuse(fmt.Sprintf("segment %q: a dot may not begin or end a segment, nor follow another", seg))
		}
	}
	return nil
}

// markerKey names a sink's hold on an object.
func markerKey(ref, sink string) string {
	return strings.ReplaceAll(ref, "/", ".") + "." + sink
}

// checkIn moves msg's payload to the object store when it is over the
// threshold. msg.Data is then nil and the headers carry the reference.
func (c *claims) checkIn(ctx context.Context, tenant, integration string, msg *Message) error {
	if msg.Stream != nil {
		return c.checkInStream(ctx, tenant, integration, msg)
	}
	if c == nil || len(msg.Data) <= c.threshold {
		return nil
	}
	key := claimKey(tenant, integration, strings.ReplaceAll(msg.ID, "/", "_"))
	info, err := c.blobs.Put(ctx, key, bytes.NewReader(msg.Data))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPayloadStore, err)
	}
	msg.Header.Set(HeaderPayloadRef, info.Key)
	msg.Header.Set(HeaderPayloadSize, strconv.FormatInt(info.Size, 10))
	msg.Header.Set(HeaderPayloadSHA256, info.SHA256)
	msg.Data = nil
	claimref.Attach(msg, c.blobs)
	return nil
}

// ErrPayloadRead: a streamed payload could not be read from its source
// (the source's error is wrapped too).
var ErrPayloadRead = connector.ErrPayloadRead

// checkInStream reads msg.Stream: up to the threshold it becomes Data;
// beyond, it is streamed to the object store as it is read.
func (c *claims) checkInStream(ctx context.Context, tenant, integration string, msg *Message) error {
	src := &readErr{r: msg.Stream}
	msg.Stream = nil
	threshold := DefaultClaimThreshold
	if c != nil {
		threshold = c.threshold
	}
	// Read one byte past the threshold to learn which side of it we are.
	head := make([]byte, threshold+1)
	n, err := io.ReadFull(src, head)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		msg.Data = head[:n]
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPayloadRead, err)
	}
	if c == nil {
		return fmt.Errorf("%w: the payload is over %d bytes and there is no object store", ErrPayloadRead, threshold)
	}
	key := claimKey(tenant, integration, strings.ReplaceAll(msg.ID, "/", "_"))
	info, err := c.blobs.Put(ctx, key, io.MultiReader(bytes.NewReader(head), src))
	if src.err != nil {
		_ = c.blobs.Delete(context.WithoutCancel(ctx), key) // in case the store kept a part
		return fmt.Errorf("%w: %w", ErrPayloadRead, src.err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPayloadStore, err)
	}
	msg.Header.Set(HeaderPayloadRef, info.Key)
	msg.Header.Set(HeaderPayloadSize, strconv.FormatInt(info.Size, 10))
	msg.Header.Set(HeaderPayloadSHA256, info.SHA256)
	msg.Data = nil
	claimref.Attach(msg, c.blobs)
	return nil
}

// readErr remembers the first error (other than EOF) its reader returned,
// so a failed upload can tell the source's fault from the store's.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// hold records that each sink needs the object ref.
func (c *claims) hold(ctx context.Context, ref string, sinks []string) error {
	for _, s := range sinks {
		if _, err := c.markers.Put(ctx, markerKey(ref, s), nil); err != nil {
			return fmt.Errorf("claim-check marker: %w", err)
		}
	}
	return nil
}

// release drops sink's hold on ref and deletes the object when no sink
// holds it any more.
func (c *claims) release(ctx context.Context, ref, sink string) error {
	if err := c.markers.Purge(ctx, markerKey(ref, sink)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return c.dropUnheld(ctx, ref)
}

// dropUnheld deletes the object ref unless a sink (or a dead letter)
// still holds it.
func (c *claims) dropUnheld(ctx context.Context, ref string) error {
	lister, err := c.markers.ListKeysFiltered(ctx, strings.ReplaceAll(ref, "/", ".")+".*")
	if err != nil {
		return err
	}
	for range lister.Keys() {
		_ = lister.Stop()
		return nil // another sink still needs it
	}
	return c.blobs.Delete(ctx, ref)
}

// ClaimReader is implemented by a step that reads claim-checked payloads
// itself, by reference (a Wasm module with the objects capability streams
// them through the ABI's object functions). Any other step gets such a
// payload loaded into Data, without the reference headers.
type ClaimReader interface {
	ReadsClaims() bool
}

func readsClaims(s Step) bool {
	cr, ok := s.(ClaimReader)
	return ok && cr.ReadsClaims()
}

// takeClaimed prepares a claim-checked step input: it remembers the
// reference (dropInputObjects deletes the object once nothing refers to
// it) and, for a step that cannot read by reference, loads the payload.
func (p *pipeline) takeClaimed(it *item, m *Message, byRef bool) error {
	ref := m.Header.Get(HeaderPayloadRef)
	if !slices.Contains(it.claimRefs, ref) {
		it.claimRefs = append(it.claimRefs, ref)
	}
	if byRef {
		return nil
	}
	data, err := m.Bytes(p.ctx)
	if err != nil {
		return err
	}
	m.Data = data
	// The header map may be the JetStream message's own: a dead letter of
	// this input is built from it and must keep the reference.
	m.Header = withoutRef(m.Header)
	return nil
}

// withoutRef is a copy of h without the claim-check headers.
func withoutRef(h Header) Header {
	h = h.Clone()
	for _, k := range []string{HeaderPayloadRef, HeaderPayloadSize, HeaderPayloadSHA256} {
		delete(h, k)
	}
	return h
}

// checkOutputRef vets the payload reference of a step's output. An output
// that inherited its input's reference but carries a payload of its own
// is that payload: the reference goes. Any other reference must name one
// of the tenant's claim-check objects, and only a step that works by
// reference may make one: a header is no way into another tenant's data.
func (p *pipeline) checkOutputRef(in, out *Message, byRef bool) error {
	ref := out.Header.Get(HeaderPayloadRef)
	if ref == "" {
		return nil
	}
	if ref == in.Header.Get(HeaderPayloadRef) {
		if len(out.Data) > 0 {
			out.Header = withoutRef(out.Header)
		}
		return nil
	}
	if !byRef {
		return Permanent(fmt.Errorf("output sets %s, but the step does not work by reference (no objects capability)", HeaderPayloadRef))
	}
	return checkPayloadRef(p.tenant, ref)
}

// claimOutput makes sure a large output travels by reference and that each
// target sink holds the object until it has delivered it.
func (p *pipeline) claimOutput(out *Message, targets []*sinkRunner) error {
	c := p.e.claims
	if c == nil {
		return nil
	}
	if !out.Claimed() {
		if err := c.checkIn(p.ctx, p.tenant, p.spec.Name, out); err != nil {
			return err
		}
		if !out.Claimed() {
			return nil
		}
		p.m.countClaim(out)
	}
	names := make([]string, len(targets))
	for i, r := range targets {
		names[i] = r.spec.Name
	}
	return c.hold(p.ctx, out.Header.Get(HeaderPayloadRef), names)
}

// dropInputObjects deletes the claim-checked payloads that the steps
// replaced (or filtered out): once the input is acknowledged nothing
// refers to them, unless an output passes one on to the sinks.
func (p *pipeline) dropInputObjects(it *item) {
	if p.e.claims == nil {
		return
	}
	refs := it.claimRefs
	if len(refs) == 0 && len(it.routes) == 0 {
		if h := Header(it.src.Headers()); h != nil && h.Get(HeaderPayloadRef) != "" {
			refs = []string{h.Get(HeaderPayloadRef)}
		}
	}
next:
	for _, ref := range refs {
		for _, out := range it.msgs {
			if out.Header.Get(HeaderPayloadRef) == ref {
				continue next // passed on; the sinks hold it
			}
		}
		if err := p.e.claims.blobs.Delete(p.ctx, ref); err != nil && !errors.Is(err, blob.ErrNotFound) {
			p.log.Warn("delete claim-checked input", "ref", ref, "err", err)
		}
	}
}
