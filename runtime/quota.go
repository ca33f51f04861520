package runtime

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Quotas at the sources. A tenant's max_messages_per_second bounds what
// its sources emit on this node, all its integrations together: a webhook
// over the rate is refused (429 with Retry-After, naming the quota), and a
// pull source (files, CDC, schedules, Wasm sources) waits instead, so it
// slows down rather than fails. Its max_storage_bytes quota is kept by
// NATS itself, through the JetStream limits of the tenant's account, and
// by the engine, which refuses sources at 90% of it (backpressure.go).
//
// The rate is per node: N nodes let a tenant through at up to N times it.

// QuotaError is what a quota refused; see connector.QuotaError.
type QuotaError = connector.QuotaError

// Names of the quotas, as the tenant API spells them.
const (
	QuotaMessagesPerSecond = connector.QuotaMessagesPerSecond
	QuotaStorageBytes      = connector.QuotaStorageBytes
)

// QuotaRefresh is how long a tenant's rate quota is used before the store
// is asked again: a PATCH of max_messages_per_second reaches every node
// within it.
const QuotaRefresh = 5 * time.Second

// rates holds each tenant's rate limiter on this node.
type rates struct {
	mu sync.Mutex
	m  map[string]*tenantRate
}

type tenantRate struct {
	lim     *rate.Limiter // nil: no rate quota
	perSec  int
	checked time.Time
}

// limiter returns the tenant's limiter, nil without a rate quota; the
// quota is read from the store at most every QuotaRefresh (a read that
// fails keeps the last one).
func (e *Engine) limiter(ctx context.Context, tenant string) *rate.Limiter {
	r := &e.rates
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]*tenantRate{}
	}
	tr := r.m[tenant]
	if tr == nil {
		tr = &tenantRate{}
		r.m[tenant] = tr
	}
	if time.Since(tr.checked) < QuotaRefresh {
		lim := tr.lim
		r.mu.Unlock()
		return lim
	}
	tr.checked = time.Now() // one reader refreshes; the others use what is there
	r.mu.Unlock()

	t, err := e.store.GetTenant(ctx, tenant)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		return tr.lim
	}
	switch n := t.Quotas.MaxMessagesPerSecond; {
	case n <= 0:
		tr.lim, tr.perSec = nil, 0
	case tr.lim == nil:
		tr.lim, tr.perSec = rate.NewLimiter(rate.Limit(n), n), n
	case n != tr.perSec:
		tr.lim.SetLimit(rate.Limit(n))
		tr.lim.SetBurst(n)
		tr.perSec = n
	}
	return tr.lim
}

// admit applies the tenant's rate quota to n messages a source emits at
// once: a push source (push) is refused with a QuotaError when the rate
// is exceeded, for all n or none, any other waits for its turn.
func (p *pipeline) admit(ctx context.Context, n int) error {
	lim := p.e.limiter(ctx, p.tenant)
	if lim == nil {
		return nil
	}
	if !p.push {
		for n > 0 { // a batch over the burst waits its turn in bursts
			k := min(n, lim.Burst())
			if err := lim.WaitN(ctx, k); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	res := lim.ReserveN(time.Now(), n)
	if !res.OK() || res.Delay() > 0 {
		retry := time.Second
		if res.OK() {
			retry = res.Delay()
			res.Cancel()
		}
		reason := fmt.Sprintf("tenant %s is over its quota of %d messages per second", p.tenant, lim.Burst())
		if n > lim.Burst() {
			reason = fmt.Sprintf("a batch of %d messages is more than tenant %s's quota of %d messages per second lets through at once; send smaller batches", n, p.tenant, lim.Burst())
		}
		return &QuotaError{
			Quota:      QuotaMessagesPerSecond,
			Reason:     reason,
			RetryAfter: time.Duration(math.Ceil(retry.Seconds())) * time.Second,
		}
	}
	return nil
}
