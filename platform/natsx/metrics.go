package natsx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// The NATS metrics: nats-server's own monitoring data (varz and jsz),
// turned into Prometheus series when Prometheus scrapes. The embedded
// server is read in-process (Conn.Monitor); a tenant's dedicated instance
// over its monitoring port (HTTPMonitor). Nothing is counted here that
// the server does not count itself, except the meta leader changes, which
// are the changes of the leader's name between two scrapes of this node.

// Snapshot is one read of a server's monitoring data.
type Snapshot struct {
	Varz *server.Varz
	Jsz  *server.JSInfo
}

// MonitorFunc reads a server's monitoring data.
type MonitorFunc func(ctx context.Context) (Snapshot, error)

// Monitored is one server to read: the platform's (Tenant empty) or a
// tenant's dedicated instance.
type Monitored struct {
	Tenant string
	Read   MonitorFunc
}

// Monitor reads the embedded server in-process; nil with an external
// NATS (--nats-url), whose servers are monitored on their own ports.
func (c *Conn) Monitor() MonitorFunc {
	srv := c.d.srv
	if srv == nil {
		return nil
	}
	return func(context.Context) (Snapshot, error) {
		v, err := srv.Varz(&server.VarzOptions{})
		if err != nil {
			return Snapshot{}, fmt.Errorf("varz: %w", err)
		}
		j, err := srv.Jsz(&server.JSzOptions{})
		if err != nil {
			return Snapshot{}, fmt.Errorf("jsz: %w", err)
		}
		return Snapshot{Varz: v, Jsz: j}, nil
	}
}

// HTTPMonitor reads a server's monitoring endpoints at base
// (http://host:port): GET /varz and /jsz.
func HTTPMonitor(hc *http.Client, base string) MonitorFunc {
	get := func(ctx context.Context, path string, v any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s%s: %s", base, path, resp.Status)
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v); err != nil {
			return fmt.Errorf("GET %s%s: %w", base, path, err)
		}
		return nil
	}
	return func(ctx context.Context) (Snapshot, error) {
		var s Snapshot
		s.Varz, s.Jsz = &server.Varz{}, &server.JSInfo{}
		if err := get(ctx, "/varz", s.Varz); err != nil {
			return Snapshot{}, err
		}
		if err := get(ctx, "/jsz", s.Jsz); err != nil {
			return Snapshot{}, err
		}
		return s, nil
	}
}

// Collector is the prometheus.Collector of the NATS series.
type Collector struct {
	list         func(ctx context.Context) []Monitored
	tenantLabels bool
	timeout      time.Duration

	mu      sync.Mutex        // held through a collection
	leaders map[string]string // the meta leader last seen, by tenant ("" the platform)
	changes map[string]float64
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector reads the servers list returns at each scrape, each within
// five seconds. tenantLabels false labels every tenant instance's series
// with an empty tenant, summed (Prometheus's series count does not grow
// with the tenants).
func NewCollector(list func(ctx context.Context) []Monitored, tenantLabels bool) *Collector {
	return &Collector{list: list, tenantLabels: tenantLabels, timeout: 5 * time.Second,
		leaders: map[string]string{}, changes: map[string]float64{}}
}

// The series; label server is "platform" or "tenant" (a dedicated
// instance), label tenant names the tenant.
var (
	natsLabels = []string{"server", "tenant"}
	natsDesc   = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("vrsky_nats_"+name, help, natsLabels, nil)
	}
	descUp            = natsDesc("up", "Whether the server's monitoring data could be read (1) or not (0).")
	descConns         = natsDesc("connections", "Client connections open now (varz connections).")
	descSlow          = natsDesc("slow_consumers_total", "Clients disconnected for being slow consumers since the server started (varz slow_consumers).")
	descInMsgs        = natsDesc("in_msgs_total", "Messages the server received (varz in_msgs).")
	descOutMsgs       = natsDesc("out_msgs_total", "Messages the server sent (varz out_msgs).")
	descInBytes       = natsDesc("in_bytes_total", "Bytes the server received (varz in_bytes).")
	descOutBytes      = natsDesc("out_bytes_total", "Bytes the server sent (varz out_bytes).")
	descMem           = natsDesc("memory_bytes", "Resident memory of the server's process (varz mem; the embedded server's is vrsky's own).")
	descRoutes        = natsDesc("routes", "Cluster routes connected (varz routes).")
	descJSEnabled     = natsDesc("jetstream_enabled", "Whether JetStream runs on the server (1) or not (0).")
	descStreams       = natsDesc("jetstream_streams", "Streams on the server (jsz streams).")
	descConsumers     = natsDesc("jetstream_consumers", "Consumers on the server (jsz consumers).")
	descMessages      = natsDesc("jetstream_messages", "Messages the server's streams hold (jsz messages).")
	descBytes         = natsDesc("jetstream_bytes", "Bytes the server's streams hold (jsz bytes).")
	descStore         = natsDesc("jetstream_storage_bytes", "File storage JetStream uses on the server (jsz storage).")
	descAPI           = natsDesc("jetstream_api_requests_total", "JetStream API requests the server received (jsz api.total).")
	descAPIErrors     = natsDesc("jetstream_api_errors_total", "JetStream API requests that got an error answer (jsz api.errors).")
	descLeader        = natsDesc("jetstream_meta_leader_present", "Whether JetStream has a meta leader (1) or not (0); a server without a cluster is its own.")
	descLeaderChanges = natsDesc("jetstream_meta_leader_changes_total", "Changes of the JetStream meta leader seen between this node's scrapes.")
	descClusterSize   = natsDesc("jetstream_cluster_size", "Servers in the JetStream meta group (1 without a cluster).")
	natsDescs         = []*prometheus.Desc{descUp, descConns, descSlow, descInMsgs, descOutMsgs, descInBytes, descOutBytes, descMem, descRoutes, descJSEnabled, descStreams, descConsumers, descMessages, descBytes, descStore, descAPI, descAPIErrors, descLeader, descLeaderChanges, descClusterSize}
	natsCounterDescs  = map[*prometheus.Desc]bool{descSlow: true, descInMsgs: true, descOutMsgs: true, descInBytes: true, descOutBytes: true, descAPI: true, descAPIErrors: true, descLeaderChanges: true}
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range natsDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	servers := c.list(ctx)
	snaps := make([]Snapshot, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, m := range servers {
		wg.Go(func() { snaps[i], errs[i] = m.Read(ctx) })
	}
	wg.Wait()
	type key struct {
		desc           *prometheus.Desc
		server, tenant string
	}
	sums := map[key]float64{}
	var order []key
	add := func(d *prometheus.Desc, srv, tenant string, v float64) {
		if srv == "tenant" && !c.tenantLabels {
			tenant = ""
		}
		k := key{d, srv, tenant}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += v
	}
	for i, m := range servers {
		srv := "platform"
		if m.Tenant != "" {
			srv = "tenant"
		}
		if errs[i] != nil {
			add(descUp, srv, m.Tenant, 0)
			continue
		}
		add(descUp, srv, m.Tenant, 1)
		v, j := snaps[i].Varz, snaps[i].Jsz
		add(descConns, srv, m.Tenant, float64(v.Connections))
		add(descSlow, srv, m.Tenant, float64(v.SlowConsumers))
		add(descInMsgs, srv, m.Tenant, float64(v.InMsgs))
		add(descOutMsgs, srv, m.Tenant, float64(v.OutMsgs))
		add(descInBytes, srv, m.Tenant, float64(v.InBytes))
		add(descOutBytes, srv, m.Tenant, float64(v.OutBytes))
		add(descMem, srv, m.Tenant, float64(v.Mem))
		add(descRoutes, srv, m.Tenant, float64(v.Routes))
		enabled := j != nil && !j.Disabled && v.JetStream.Config != nil
		add(descJSEnabled, srv, m.Tenant, b2f(enabled))
		if !enabled {
			add(descLeader, srv, m.Tenant, 0)
			continue
		}
		add(descStreams, srv, m.Tenant, float64(j.Streams))
		add(descConsumers, srv, m.Tenant, float64(j.Consumers))
		add(descMessages, srv, m.Tenant, float64(j.Messages))
		add(descBytes, srv, m.Tenant, float64(j.Bytes))
		add(descStore, srv, m.Tenant, float64(j.Store))
		add(descAPI, srv, m.Tenant, float64(j.API.Total))
		add(descAPIErrors, srv, m.Tenant, float64(j.API.Errors))
		// Without a cluster there is no meta group: the server leads.
		leader, size := v.Name, 1
		if j.Meta != nil && j.Meta.Size > 0 {
			leader, size = j.Meta.Leader, j.Meta.Size
		}
		add(descLeader, srv, m.Tenant, b2f(leader != ""))
		add(descClusterSize, srv, m.Tenant, float64(size))
		if last, seen := c.leaders[m.Tenant]; seen && last != leader && leader != "" {
			c.changes[m.Tenant]++
		}
		if leader != "" {
			c.leaders[m.Tenant] = leader
		}
		add(descLeaderChanges, srv, m.Tenant, c.changes[m.Tenant])
	}
	for _, k := range order {
		vt := prometheus.GaugeValue
		if natsCounterDescs[k.desc] {
			vt = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(k.desc, vt, sums[k], k.server, k.tenant)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
