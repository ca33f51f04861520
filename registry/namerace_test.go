package registry_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vrsky/vrsky/registry"
)

// TestPublishNameRace: two tenants uploading the same new connector name at
// once get one success between them; the other is refused as the owner of
// another publisher's name (409), and stores nothing. The winner keeps the
// name for its next versions. On the embedded default and on PostgreSQL.
func TestPublishNameRace(t *testing.T) {
	wrap := fixture(t, "wrap.wasm")
	for _, b := range []backend{natsBackend, prodBackend} {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			tenants := []string{"acme", "globex"}
			// Both uploads pass the registry's own owner check in most
			// rounds (6 in 10 when measured), so that the store's claim
			// decides: without it, both would succeed.
			for round := range 8 {
				name := fmt.Sprintf("contested-%d", round)
				errs := make([]error, len(tenants))
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i, tenant := range tenants {
					wg.Go(func() {
						<-start
						_, errs[i] = e.reg.Publish(e.ctx, tenant, registry.Upload{Manifest: manifest(name, "1.0.0"), Module: wrap})
					})
				}
				close(start)
				wg.Wait()

				winner, loser := -1, -1
				for i, err := range errs {
					if err == nil {
						winner = i
						continue
					}
					loser = i
					var r *registry.Refusal
					if !errors.As(err, &r) || r.Rule != registry.RuleName || r.Field != "manifest.name" {
						t.Fatalf("round %d: %s's upload: %v, want a refusal of rule %s, 409, manifest.name", round, tenants[i], err, registry.RuleName)
					}
				}
				if winner < 0 || loser < 0 {
					t.Fatalf("round %d: want exactly one upload to win, got errors %v", round, errs)
				}
				for i, tenant := range tenants {
					want := 0
					if i == winner {
						want = 1
					}
					if vs, err := e.store.ListConnectorVersions(e.ctx, tenant, name); err != nil || len(vs) != want {
						t.Errorf("round %d: %s holds %d versions of %s (%v), want %d", round, tenant, len(vs), name, err, want)
					}
				}
				// The name stays the winner's.
				e.publish(tenants[winner], registry.Upload{Manifest: manifest(name, "1.0.1"), Module: wrap})
				_, err := e.reg.Publish(e.ctx, tenants[loser], registry.Upload{Manifest: manifest(name, "2.0.0"), Module: wrap})
				refusal(t, err, registry.RuleName)
			}
		})
	}
}

// TestPublishDeletedName: a name whose every version its publisher deleted
// stays that publisher's: another tenant's upload passes the registry's own
// owner check (no version is left to find) and is refused by the store's
// claim, with the same refusal.
func TestPublishDeletedName(t *testing.T) {
	e := newEnv(t, natsBackend)
	wrap := fixture(t, "wrap.wasm")
	e.publish("acme", registry.Upload{Manifest: manifest("gone", "1.0.0"), Module: wrap})
	if err := e.reg.Delete(e.ctx, registry.Viewer{Tenant: "acme"}, "gone", "1.0.0"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := e.reg.Publish(e.ctx, "globex", registry.Upload{Manifest: manifest("gone", "1.0.0"), Module: wrap})
	if r := refusal(t, err, registry.RuleName); r.Field != "manifest.name" {
		t.Errorf("got field %q, want manifest.name", r.Field)
	}
	e.publish("acme", registry.Upload{Manifest: manifest("gone", "1.0.0"), Module: wrap})
}
