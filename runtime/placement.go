package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// Placement: a tenant's NATS lives on the platform servers (shared) or on
// an instance of its own (dedicated); service discovery is the tenant's
// Endpoint record in the store, which every node follows at each
// reconcile (followPlacements). A move (MoveTenant) goes in three steps,
// each recorded in the endpoint's Moving record so that every node takes
// it:
//
//   - drain: sources are refused (ErrBackpressure: a webhook answers 429
//     with Retry-After, pull sources wait) while steps and sinks finish
//     what the old placement holds;
//   - hold: every node stops the tenant's pipelines; the mover copies what
//     is left (messages still queued or retrying, dead letters, step KV
//     buckets) to the new placement, stream by stream in order;
//   - done: the endpoint names the new placement; nodes dial it and start
//     the pipelines again, which take the copied messages first.
//
// Every message accepted before the move is delivered (from the old
// placement, or copied), in order per sink; one that was being retried
// when the pipelines stopped may be delivered twice (at least once).
// Nodes follow within a reconcile interval; the mover waits two intervals
// at each step (settle).

// Phases of a move (store.Endpoint.Moving.Phase).
const (
	phaseDrain = "drain"
	phaseHold  = "hold"
)

// drainTimeout bounds the wait for the tenant's running integrations to
// empty their streams before the copy takes what is left.
const drainTimeout = time.Minute

// copyWindow is how many copied messages may await their acks at once.
const copyWindow = 512

// maxSettle bounds settle: nodes reconciling less often than every 15 s
// may take a step late (they refuse the tenant's sources meanwhile).
const maxSettle = 30 * time.Second

// placementTenancy is what a Tenancy offers for dedicated placement
// (platform/tenancy's Manager).
type placementTenancy interface {
	Endpoint(ctx context.Context, t store.Tenant) (store.Endpoint, error)
	Endpoints(ctx context.Context) (map[string]store.Endpoint, error)
	DialURL(tenant string) string
	Switch(tenant, url string)
	Provision(ctx context.Context, t store.Tenant) (string, error)
	Unprovision(ctx context.Context, tenant string) error
	DialAt(ctx context.Context, t store.Tenant, url string) (*natsx.Conn, error)
	EnsureKept(ctx context.Context, t store.Tenant) error
}

// ErrMoving: the tenant's NATS is moving; sources are refused meanwhile.
var ErrMoving = fmt.Errorf("%w: the tenant's NATS is moving to another placement", ErrBackpressure)

// moveState is what this node does for tenants being moved.
type moveState struct {
	paused map[string]bool // sources refused
	held   map[string]bool // pipelines stopped
	// restarting: switched to their new placement, their pipelines not
	// started yet (between followPlacements and the Apply after it).
	restarting map[string]bool
	// running: the moves this node runs (MoveTenant), kept across
	// followPlacements.
	running map[string]bool
}

// Moving reports whether the tenant's NATS is being moved, as this node
// last saw its endpoint record: its sources are refused meanwhile.
func (e *Engine) Moving(tenant string) bool {
	e.mvMu.RLock()
	defer e.mvMu.RUnlock()
	return e.moves.paused[tenant] || e.moves.restarting[tenant] || e.moves.running[tenant]
}

// restarted ends the restarting state of the tenants that
// followPlacements switched, once their integrations were applied; nil
// ends every tenant's (a reconcile applied them all).
func (e *Engine) restarted(tenants []string) {
	e.mvMu.Lock()
	defer e.mvMu.Unlock()
	if tenants == nil {
		e.moves.restarting = map[string]bool{}
		return
	}
	for _, t := range tenants {
		delete(e.moves.restarting, t)
	}
}

func (e *Engine) isPaused(tenant string) bool {
	e.mvMu.RLock()
	defer e.mvMu.RUnlock()
	return e.moves.paused[tenant]
}

func (e *Engine) isHeld(tenant string) bool {
	e.mvMu.RLock()
	defer e.mvMu.RUnlock()
	return e.moves.held[tenant]
}

// followPlacements brings this node in line with the tenants' endpoint
// records: pause or hold the tenants being moved, and point the tenants
// whose placement changed at their new servers (their pipelines stop
// first; the Apply that follows starts them there). It returns the
// tenants it switched: pass them to restarted once applied.
func (e *Engine) followPlacements(ctx context.Context) (switched []string) {
	pt, ok := e.tenants.(placementTenancy)
	if !ok {
		return nil
	}
	e.followMu.Lock() // the reconcile loop and a move on this node
	defer e.followMu.Unlock()
	eps, err := pt.Endpoints(ctx)
	if err != nil {
		e.log.Warn("tenant endpoints", "err", err)
		return nil
	}
	e.mvMu.RLock()
	restarting := e.moves.restarting
	e.mvMu.RUnlock()
	st := moveState{paused: map[string]bool{}, held: map[string]bool{}, restarting: map[string]bool{}, running: map[string]bool{}}
	for t := range restarting {
		st.restarting[t] = true
	}
	e.mvMu.RLock()
	for t := range e.moves.running {
		st.running[t] = true
	}
	e.mvMu.RUnlock()
	for tenant, ep := range eps {
		if ep.Moving != nil {
			st.paused[tenant] = true
			st.held[tenant] = ep.Moving.Phase == phaseHold
			continue
		}
		if ep.Placement == store.PlacementDedicated {
			// A local instance of this machine's, after a restart.
			if t, err := e.store.GetTenant(ctx, tenant); err == nil {
				if err := pt.EnsureKept(ctx, t); err != nil {
					e.log.Warn("dedicated NATS instance", "tenant", tenant, "err", err)
				}
			}
		}
	}
	e.mvMu.Lock()
	e.moves = st
	e.mvMu.Unlock()

	e.mu.Lock()
	running := map[string][]string{}
	for k, ent := range e.pipes {
		running[ent.tenant] = append(running[ent.tenant], k)
	}
	e.mu.Unlock()
	tenants := map[string]bool{}
	for t := range eps {
		tenants[t] = true
	}
	for t := range running {
		tenants[t] = true
	}
	for t := range tenants {
		want := ""
		if ep, ok := eps[t]; ok && ep.Placement == store.PlacementDedicated {
			want = ep.URL
		}
		if st.held[t] || pt.DialURL(t) != want {
			for _, k := range running[t] {
				e.stopKey(k)
			}
		}
		if pt.DialURL(t) != want {
			e.mvMu.Lock()
			e.moves.restarting[t] = true
			e.mvMu.Unlock()
			pt.Switch(t, want)
			switched = append(switched, t)
			e.log.Info("tenant placement followed", "tenant", t, "url", want)
		}
	}
	return switched
}

// MoveTenant moves the tenant's NATS to placement to (store.PlacementShared
// or store.PlacementDedicated), as the package comment describes, and
// returns once the tenant runs there. Run it on one node; the others
// follow the endpoint record.
func (e *Engine) MoveTenant(ctx context.Context, tenant, to string) error {
	pt, ok := e.tenants.(placementTenancy)
	if !ok {
		return errors.New("runtime: this engine's Tenancy cannot place tenants")
	}
	if to != store.PlacementShared && to != store.PlacementDedicated {
		return fmt.Errorf("runtime: placement %q: want %q or %q", to, store.PlacementShared, store.PlacementDedicated)
	}
	t, err := e.store.GetTenant(ctx, tenant)
	if err != nil {
		return fmt.Errorf("move %s: %w", tenant, err)
	}
	cur, err := pt.Endpoint(ctx, t)
	if err != nil {
		return fmt.Errorf("move %s: %w", tenant, err)
	}
	if cur.Moving != nil {
		return fmt.Errorf("move %s: a move to %s is in progress", tenant, cur.Moving.Placement)
	}
	if cur.Placement == to {
		return nil
	}
	e.mvMu.Lock()
	if e.moves.running == nil {
		e.moves.running = map[string]bool{}
	}
	if e.moves.running[tenant] {
		e.mvMu.Unlock()
		return fmt.Errorf("move %s: this node is moving it already", tenant)
	}
	e.moves.running[tenant] = true
	e.mvMu.Unlock()
	defer func() {
		e.mvMu.Lock()
		delete(e.moves.running, tenant)
		e.mvMu.Unlock()
	}()
	fromURL := ""
	if cur.Placement == store.PlacementDedicated {
		fromURL = cur.URL
	}
	toURL := ""
	if to == store.PlacementDedicated {
		if toURL, err = pt.Provision(ctx, t); err != nil {
			return fmt.Errorf("move %s: %w", tenant, err)
		}
	}
	log := e.log.With("tenant", tenant, "from", cur.Placement, "to", to)
	log.Info("tenant move: draining")
	start := time.Now()

	rec := cur
	if cur.Revision == 0 { // no record yet: shared by default
		rec.URL = ""
	}
	rec.Moving = &store.Endpoint{Tenant: tenant, Placement: to, URL: toURL, Account: cur.Account, Phase: phaseDrain}
	if rec, err = e.putEndpoint(ctx, rec); err != nil {
		return fmt.Errorf("move %s: %w", tenant, err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// The old placement still holds everything (the copy copies):
		// go back to it, and let the sources in again.
		back := rec
		back.Moving = nil
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := e.store.PutEndpoint(bctx, back); err != nil {
			log.Error("tenant move failed, and its endpoint record could not be restored", "err", err)
			return
		}
		switched := e.followPlacements(bctx)
		e.applyTenant(bctx, tenant)
		e.restarted(append(switched, tenant))
		if toURL != "" {
			_ = pt.Unprovision(bctx, tenant)
		}
		log.Warn("tenant move failed: the tenant stays where it was")
	}()
	e.followPlacements(ctx)
	e.settle(ctx)

	old, err := pt.DialAt(ctx, t, fromURL)
	if err != nil {
		return fmt.Errorf("move %s: the old placement: %w", tenant, err)
	}
	defer old.Close()
	dst, err := pt.DialAt(ctx, t, toURL)
	if err != nil {
		return fmt.Errorf("move %s: the new placement: %w", tenant, err)
	}
	defer dst.Close()
	e.waitDrained(ctx, tenant, old, log)

	log.Info("tenant move: holding the pipelines, copying what is left")
	rec.Moving.Phase = phaseHold
	if rec, err = e.putEndpoint(ctx, rec); err != nil {
		return fmt.Errorf("move %s: %w", tenant, err)
	}
	e.followPlacements(ctx)
	e.settle(ctx)
	copied, err := copyStreams(ctx, old, dst)
	if err != nil {
		return fmt.Errorf("move %s: copy: %w", tenant, err)
	}

	rec.Placement, rec.URL, rec.Moving = to, toURL, nil
	if rec, err = e.putEndpoint(ctx, rec); err != nil {
		return fmt.Errorf("move %s: %w", tenant, err)
	}
	done = true
	switched := e.followPlacements(ctx)
	e.applyTenant(ctx, tenant) // start here now, not at the next reconcile
	e.restarted(append(switched, tenant))
	log.Info("tenant move: done; removing the old placement's streams", "copied", copied, "took", time.Since(start).String())
	e.settle(ctx)
	if err := tenancy.DeleteStreams(ctx, old); err != nil {
		log.Warn("tenant move: old streams left", "err", err)
	}
	if fromURL != "" {
		if err := pt.Unprovision(ctx, tenant); err != nil {
			log.Warn("tenant move: old instance left", "err", err)
		}
	}
	return nil
}

// applyTenant applies every integration of tenant (Apply).
func (e *Engine) applyTenant(ctx context.Context, tenant string) {
	ins, err := e.store.ListIntegrations(ctx, tenant)
	if err != nil {
		e.log.Warn("integrations of a moved tenant", "tenant", tenant, "err", err)
		return
	}
	for _, in := range ins {
		e.Apply(in)
	}
}

// putEndpoint writes rec and returns it with its new revision.
func (e *Engine) putEndpoint(ctx context.Context, rec store.Endpoint) (store.Endpoint, error) {
	out, err := e.store.PutEndpoint(ctx, rec)
	if err != nil {
		return rec, fmt.Errorf("endpoint record: %w", err)
	}
	return out, nil
}

// settle waits two reconcile intervals (at most maxSettle), for every
// node to take a step.
func (e *Engine) settle(ctx context.Context) {
	select {
	case <-time.After(min(2*e.interval, maxSettle)):
	case <-ctx.Done():
	}
}

// waitDrained waits, up to drainTimeout, until the streams of the tenant's
// running integrations at old hold no message.
func (e *Engine) waitDrained(ctx context.Context, tenant string, old *natsx.Conn, log interface {
	Warn(msg string, args ...any)
}) {
	ins, err := e.store.ListIntegrations(ctx, tenant)
	if err != nil {
		return
	}
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		left := uint64(0)
		for _, in := range ins {
			if in.Desired != store.StateRunning {
				continue // nothing drains a stopped integration: its messages are copied
			}
			s, err := old.JS.Stream(ctx, streamName(tenant, in.Name))
			if err != nil {
				continue
			}
			if info, err := s.Info(ctx); err == nil {
				left += info.State.Msgs
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Warn("tenant move: streams not drained in time; what is left is copied")
}

// copyStreams recreates every stream of src's account at dst (KV buckets
// are streams too) and copies its messages, in order, with their headers.
// It returns how many messages it copied.
func copyStreams(ctx context.Context, src, dst *natsx.Conn) (int, error) {
	n := 0
	names := src.JS.StreamNames(ctx)
	for name := range names.Name() {
		s, err := src.JS.Stream(ctx, name)
		if err != nil {
			return n, fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return n, fmt.Errorf("stream %s: %w", name, err)
		}
		cfg := info.Config
		cfg.Replicas = dst.Replicas
		if _, err := dst.JS.CreateOrUpdateStream(ctx, cfg); err != nil {
			return n, fmt.Errorf("stream %s at the new placement: %w", name, err)
		}
		if info.State.Msgs == 0 {
			continue
		}
		// Read by sequence (a work-queue stream admits no second
		// consumer), skipping what acks removed; publish asynchronously
		// (one connection: stored in the order sent), a window at a time.
		copied := uint64(0)
		var futs []jetstream.PubAckFuture
		flush := func() error {
			var first error
			err := awaitAcks(ctx, futs, func(_ int, err error) bool {
				if err != nil && first == nil {
					first = err
				}
				return true
			})
			futs = futs[:0]
			return cmp.Or(err, first)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && copied < info.State.Msgs; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return n, fmt.Errorf("read stream %s at %d: %w", name, seq, err)
			}
			h := m.Header
			// The source stream deduplicated already; a dedup id here
			// could only drop a message.
			h.Del(nats.MsgIdHdr)
			f, err := dst.JS.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: h, Data: m.Data})
			if err != nil {
				return n, fmt.Errorf("copy into %s: %w", name, err)
			}
			futs = append(futs, f)
			n++
			copied++
			if len(futs) == copyWindow {
				if err := flush(); err != nil {
					return n, fmt.Errorf("copy into %s: %w", name, err)
				}
			}
		}
		if err := flush(); err != nil {
			return n, fmt.Errorf("copy into %s: %w", name, err)
		}
	}
	return n, names.Err()
}

// Thresholds of automatic placement (Config.DedicatedAboveRate,
// DedicatedAboveBytes): a shared tenant that crosses one is moved onto a
// dedicated instance by the node that sees it first.
type autoState struct {
	at       time.Time
	ingested map[string]uint64 // per tenant, this node's running total at the last look
}

// autoPlace moves shared tenants over a threshold to dedicated instances.
// The rate is what this node ingested for the tenant since the last look;
// the bytes are what the tenant's account holds.
func (e *Engine) autoPlace(ctx context.Context) {
	if e.auto.rate <= 0 && e.auto.bytes <= 0 {
		return
	}
	pt, ok := e.tenants.(placementTenancy)
	if !ok {
		return
	}
	now := time.Now()
	totals := map[string]uint64{}
	e.mu.Lock()
	for _, ent := range e.pipes {
		if ent.pipe != nil {
			totals[ent.tenant] += ent.pipe.ingested.Load()
		}
	}
	e.mu.Unlock()
	e.auto.mu.Lock()
	prev, since := e.auto.last.ingested, now.Sub(e.auto.last.at)
	e.auto.last = autoState{at: now, ingested: totals}
	e.auto.mu.Unlock()
	for tenant, total := range totals {
		over := ""
		if e.auto.rate > 0 && prev != nil && since > 0 && total >= prev[tenant] {
			if rate := float64(total-prev[tenant]) / since.Seconds(); rate > float64(e.auto.rate) {
				over = fmt.Sprintf("%.0f messages/s over %d", rate, e.auto.rate)
			}
		}
		if over == "" && e.auto.bytes > 0 {
			if c, err := e.tenants.Conn(ctx, tenant); err == nil {
				if ai, err := c.JS.AccountInfo(ctx); err == nil && int64(ai.Store) > e.auto.bytes {
					over = fmt.Sprintf("%d bytes stored, over %d", ai.Store, e.auto.bytes)
				}
			}
		}
		if over == "" {
			continue
		}
		t, err := e.store.GetTenant(ctx, tenant)
		if err != nil {
			continue
		}
		ep, err := pt.Endpoint(ctx, t)
		if err != nil || ep.Placement != store.PlacementShared || ep.Moving != nil {
			continue
		}
		e.mvMu.RLock()
		busy := e.moves.running[tenant]
		e.mvMu.RUnlock()
		if busy {
			continue
		}
		e.log.Info("tenant over a placement threshold: moving it to a dedicated instance", "tenant", tenant, "why", over)
		t.Placement = store.PlacementDedicated
		if _, err := e.store.UpdateTenant(ctx, t); err != nil {
			e.log.Warn("tenant placement", "tenant", tenant, "err", err)
			continue
		}
		go func() {
			if err := e.MoveTenant(context.WithoutCancel(ctx), tenant, store.PlacementDedicated); err != nil {
				e.log.Error("automatic tenant move failed", "tenant", tenant, "err", err)
			}
		}()
	}
}
