package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

// Scale-out: three `vrsky serve` nodes on one 3-node NATS cluster and one
// PostgreSQL share an integration's work, run a schedule on one node at a
// time, and lose nothing when one of them is killed with SIGKILL and one
// NATS server stops.

// scaleTokenEnv is the variable the sinks' bearer token is read from; each
// node's environment gives it the node's name, so the receiving server
// knows which node delivered each request (the Authorization header).
const scaleTokenEnv = "VRSKY_SECRET_ACME__SINK_TOKEN"

// nodeSink receives the deliveries of both integrations and records, per
// message id (Idempotency-Key), how often it arrived and from which node.
type nodeSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	orders map[string]*receipt
	ticks  map[string]*receipt // by message id; tick is the payload's tick
	raw    int                 // order deliveries, duplicates included
}

type receipt struct {
	n     int
	nodes []string // the delivering node of each arrival
	tick  string
}

func newNodeSink(t *testing.T) *nodeSink {
	s := &nodeSink{orders: map[string]*receipt{}, ticks: map[string]*receipt{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil { // a cut-off body is not a delivery
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := r.Header.Get("Idempotency-Key")
		node, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if id == "" || !ok {
			http.Error(w, "no Idempotency-Key or bearer token", http.StatusBadRequest)
			return
		}
		var tick struct{ Tick string }
		if r.URL.Path == "/ticks" {
			if err := json.Unmarshal(body, &tick); err != nil || tick.Tick == "" {
				http.Error(w, "a tick without its time", http.StatusBadRequest)
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		m := s.orders
		if r.URL.Path == "/ticks" {
			m = s.ticks
		} else {
			s.raw++
		}
		rc := m[id]
		if rc == nil {
			rc = &receipt{tick: tick.Tick}
			m[id] = rc
		}
		rc.n++
		rc.nodes = append(rc.nodes, node)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *nodeSink) distinctOrders() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.orders) }

// tickTimes are the distinct tick times delivered, in UTC (map keys
// compare the location too), with the message ids each came under.
func (s *nodeSink) tickTimes(t *testing.T) map[time.Time][]string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[time.Time][]string{}
	for id, rc := range s.ticks {
		at, err := time.Parse(time.RFC3339Nano, rc.tick)
		if err != nil {
			t.Fatalf("tick %s: time %q: %v", id, rc.tick, err)
		}
		out[at.UTC()] = append(out[at.UTC()], id)
	}
	return out
}

// scaleSpecs are the two integrations: webhook → http sink, and a
// schedule ticking every second → http sink. Both sinks authenticate with
// the node's own token. max_catch_up covers the lease's TTL (15s).
func scaleSpecs(sinkURL string) []string {
	auth := fmt.Sprintf(`auth: {type: bearer, token_env: %s}`, scaleTokenEnv)
	return []string{
		fmt.Sprintf(`name: orders
source: {connector: http-webhook, config: {path: orders}}
sinks:
  - name: api
    connector: http
    config: {url: %q, %s}
retry: {max_attempts: 50, initial_backoff: 100ms, max_backoff: 1s}
`, sinkURL+"/orders", auth),
		fmt.Sprintf(`name: ticks
source: {connector: schedule, config: {cron: "* * * * * *", max_catch_up: 120}}
sinks:
  - name: api
    connector: http
    config: {url: %q, %s}
retry: {max_attempts: 50, initial_backoff: 100ms, max_backoff: 1s}
`, sinkURL+"/ticks", auth),
	}
}

// nodeStatus is the part of GET /api/v1/integrations/{name} the test
// reads: what the answering node does.
type nodeStatus struct {
	Status struct {
		State         string `json:"state"`
		SourceStandby bool   `json:"source_standby"`
		Sinks         []struct {
			DeliveredTotal uint64 `json:"delivered_total"`
		} `json:"sinks"`
	} `json:"status"`
}

func (in *instance) status(key, name string) (nodeStatus, bool) {
	var st nodeStatus
	req, _ := http.NewRequest("GET", in.url+"/api/v1/integrations/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil
}

// tickLeader waits until exactly one of nodes runs the schedule's source
// and the others stand by, and returns its index.
func tickLeader(t *testing.T, nodes []*instance, alive []bool, key string, timeout time.Duration) int {
	t.Helper()
	leader := -1
	waitFor(t, timeout, "one node to run the schedule, the others on standby", func() bool {
		leader = -1
		for i, n := range nodes {
			if !alive[i] {
				continue
			}
			st, ok := n.status(key, "ticks")
			if !ok || st.Status.State != "running" {
				return false
			}
			if !st.Status.SourceStandby {
				if leader >= 0 {
					return false
				}
				leader = i
			}
		}
		return leader >= 0
	})
	return leader
}

// TestScaleOutSharesWorkAndSurvivesLosses posts 30,000 webhook messages
// spread over three nodes while a schedule ticks every second; mid-run it
// kills the node that holds the schedule's lease with SIGKILL, then shuts
// down the NATS server that leads the webhook integration's stream. Every
// accepted message must reach the sink (which drops repeated
// Idempotency-Keys: redelivery after SIGKILL is at least once), so the
// distinct messages delivered are exactly the accepted ones; each node
// must have delivered a share, and every second must tick once, under one
// message id.
func TestScaleOutSharesWorkAndSurvivesLosses(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	dsn := pgtest.New(t)
	sink := newNodeSink(t)

	nodes := make([]*instance, 3)
	for i := range nodes {
		n := serveCmd(t, t.TempDir(), freeAddr(t), backends{databaseURL: dsn})
		n.cmd.Args = append(n.cmd.Args, "--nats-url", cluster.URL(), "--nats-keys", cluster.KeysFile)
		n.cmd.Env = append(n.cmd.Env, fmt.Sprintf("%s=node-%d", scaleTokenEnv, i))
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	for _, n := range nodes {
		n.waitReady()
	}
	alive := []bool{true, true, true}

	var tenant struct {
		APIKey string `json:"api_key"`
	}
	nodes[0].call("POST", "/api/v1/tenants", adminKey, "application/json", `{"name":"acme"}`, http.StatusCreated, &tenant)
	key := tenant.APIKey
	for i, spec := range scaleSpecs(sink.srv.URL) {
		n := nodes[i%len(nodes)] // any node takes API calls
		n.call("POST", "/api/v1/integrations", key, "application/yaml", spec, http.StatusCreated, nil)
		name := strings.TrimPrefix(strings.SplitN(spec, "\n", 2)[0], "name: ")
		n.call("POST", "/api/v1/integrations/"+name+"/start", key, "", "", http.StatusOK, nil)
	}
	// Every node follows the store within a reconcile (5s).
	waitFor(t, 30*time.Second, "every node to run the webhook integration", func() bool {
		for _, n := range nodes {
			if st, ok := n.status(key, "orders"); !ok || st.Status.State != "running" {
				return false
			}
		}
		return true
	})
	leader := tickLeader(t, nodes, alive, key, 30*time.Second)
	ticksFrom := time.Now().UTC().Truncate(time.Second).Add(2 * time.Second)
	t.Logf("node-%d holds the schedule's lease; ticks checked from %s", leader, ticksFrom.Format(time.TimeOnly))

	var nats struct {
		Account string `json:"account"`
	}
	nodes[0].call("GET", "/api/v1/tenants/acme/nats", adminKey, "", "", http.StatusOK, &nats)

	// The load: each message has its own Idempotency-Key, so a request
	// that fails before its 202 (a transport error, a 503 while a NATS
	// server goes) is sent again, to the next live node, and stored once.
	const total, clients = 30000, 24
	var (
		aliveMu  sync.RWMutex
		accepted sync.Map // key → the id the 202 answered
		nAcc     atomic.Int64
		retries  atomic.Int64
		gaveUp   atomic.Int64
		stuck    atomic.Bool // the load cannot finish: the clients stop
		wg       sync.WaitGroup
	)
	isAlive := func(i int) bool { aliveMu.RLock(); defer aliveMu.RUnlock(); return alive[i] }
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	post := func(node int, k, body string) (string, bool) {
		req, _ := http.NewRequest("POST", nodes[node].url+"/hooks/acme/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", k)
		resp, err := hc.Do(req)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&out) != nil {
			return "", false
		}
		return out.ID, true
	}
	send := func(i int) {
		k := fmt.Sprintf("scale-%05d", i)
		body := fmt.Sprintf(`{"order_id": %d}`, i)
		deadline := time.Now().Add(90 * time.Second) // well inside the 2-minute dedup window
		for attempt := 0; time.Now().Before(deadline) && !stuck.Load(); attempt++ {
			node := (i + attempt) % len(nodes)
			if !isAlive(node) {
				continue
			}
			if attempt >= len(nodes) {
				retries.Add(1)
				time.Sleep(100 * time.Millisecond)
			} else if attempt > 0 {
				retries.Add(1)
			}
			if id, ok := post(node, k, body); ok {
				accepted.Store(k, id)
				nAcc.Add(1)
				return
			}
		}
		gaveUp.Add(1)
	}
	next := atomic.Int64{}
	for range clients {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < total; i = int(next.Add(1)) - 1 {
				send(i)
			}
		})
	}

	// The losses, mid-run: the schedule's leader at a third of the load,
	// the stream's leading NATS server at two thirds.
	waitFor(t, 120*time.Second, "a third of the load accepted", func() bool { return nAcc.Load() >= total/3 })
	aliveMu.Lock()
	alive[leader] = false
	aliveMu.Unlock()
	nodes[leader].kill9()
	killedAt := time.Now()
	t.Logf("killed node-%d (SIGKILL) after %d accepted", leader, nAcc.Load())

	waitFor(t, 120*time.Second, "two thirds of the load accepted", func() bool { return nAcc.Load() >= 2*total/3 })
	stopped := -1
	for i, s := range cluster.Servers {
		if s.JetStreamIsStreamLeader(nats.Account, "VRSKY_acme_orders") {
			stopped = i
		}
	}
	if stopped < 0 {
		t.Fatal("no NATS server leads the stream VRSKY_acme_orders")
	}
	cluster.Servers[stopped].Shutdown()
	t.Logf("shut down NATS server %s (the stream's leader) after %d accepted", cluster.Servers[stopped].Name(), nAcc.Load())
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()
	select {
	case <-loadDone:
	case <-time.After(240 * time.Second):
		stuck.Store(true)
		<-loadDone
		t.Fatalf("the load did not finish in 240s: %d of %d accepted", nAcc.Load(), total)
	}
	if n := gaveUp.Load(); n > 0 {
		t.Fatalf("%d messages were never accepted in 90s of retries", n)
	}
	t.Logf("accepted %d, %d requests sent again after a failure", nAcc.Load(), retries.Load())

	// Every accepted message arrives; the deduped set is the accepted one.
	waitFor(t, 120*time.Second, fmt.Sprintf("%d accepted messages delivered", total), func() bool { return sink.distinctOrders() >= total })
	var missing, unknown, dups int
	perNode := map[string]int{}
	sink.mu.Lock()
	accepted.Range(func(k, id any) bool {
		if k != id {
			t.Errorf("the 202 for Idempotency-Key %s answered id %s", k, id)
		}
		if sink.orders[k.(string)] == nil {
			missing++
		}
		return true
	})
	for id, rc := range sink.orders {
		if _, ok := accepted.Load(id); !ok {
			unknown++
		}
		dups += rc.n - 1
		for _, n := range rc.nodes {
			perNode[n]++
		}
	}
	raw := sink.raw
	sink.mu.Unlock()
	t.Logf("delivered %d distinct, %d raw deliveries, %d redelivered duplicates (dropped by the deduping sink); per node %v", total-missing, raw, dups, perNode)
	if missing > 0 || unknown > 0 {
		t.Fatalf("%d accepted messages never delivered, %d delivered that were never accepted", missing, unknown)
	}
	for i := range nodes { // the killed node too: it ran for a third of the load
		if perNode[fmt.Sprintf("node-%d", i)] == 0 {
			t.Errorf("node-%d delivered nothing: the nodes do not share the work (per node %v)", i, perNode)
		}
	}

	// The schedule: a survivor took the lease over, and every second from
	// before the kill to now ticked once, under one id.
	newLeader := tickLeader(t, nodes, alive, key, 60*time.Second)
	ticksTo := time.Now().UTC().Truncate(time.Second)
	waitFor(t, 60*time.Second, "the ticks up to now delivered", func() bool {
		for at := range sink.tickTimes(t) {
			if at.After(ticksTo) {
				return true
			}
		}
		return false
	})
	times := sink.tickTimes(t)
	var bad []string
	for s := ticksFrom; s.Before(ticksTo); s = s.Add(time.Second) {
		if ids := times[s]; len(ids) != 1 {
			bad = append(bad, fmt.Sprintf("%s: %d ids", s.Format(time.TimeOnly), len(ids)))
		}
	}
	for at, ids := range times {
		if !at.Equal(at.Truncate(time.Second)) {
			bad = append(bad, fmt.Sprintf("%s: not on a second", at.Format(time.RFC3339Nano)))
		}
		if len(ids) > 1 {
			bad = append(bad, fmt.Sprintf("%s: %d ids", at.Format(time.TimeOnly), len(ids)))
		}
	}
	sort.Strings(bad)
	sink.mu.Lock()
	tickDups, tickNodes := 0, map[string]int{}
	for _, rc := range sink.ticks {
		tickDups += rc.n - 1
		tickNodes[rc.nodes[0]]++
	}
	sink.mu.Unlock()
	t.Logf("ticks %s–%s: node-%d led, node-%d after the kill at %s; first deliveries per node %v; %d redelivered duplicates",
		ticksFrom.Format(time.TimeOnly), ticksTo.Format(time.TimeOnly), leader, newLeader, killedAt.Format(time.TimeOnly), tickNodes, tickDups)
	if len(bad) > 0 {
		t.Fatalf("the schedule did not tick once per second: %s", strings.Join(bad, "; "))
	}
}
