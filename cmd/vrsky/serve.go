package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/vrsky/vrsky/api"
	fileconn "github.com/vrsky/vrsky/builtin/file"
	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/builtin/postgres"
	"github.com/vrsky/vrsky/builtin/postgrescdc"
	"github.com/vrsky/vrsky/builtin/schedule"
	"github.com/vrsky/vrsky/builtin/slack"
	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/wasmcheck"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/blob/s3blob"
	"github.com/vrsky/vrsky/platform/datadir"
	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/pgstore"
	"github.com/vrsky/vrsky/platform/tenancy"
	"github.com/vrsky/vrsky/platform/tracing"
	"github.com/vrsky/vrsky/registry"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/ui"
	wasmconnectors "github.com/vrsky/vrsky/wasm-connectors"
)

// serveFlags are `vrsky serve`'s settings; each is also VRSKY_<NAME>.
type serveFlags struct {
	data        string
	listen      string
	debugAddr   string
	adminKey    string
	natsURL     string
	natsKeys    string
	natsReplica int
	natsListen  string
	dedicated   string
	dedicatedNS string
	aboveRate   int
	aboveBytes  int64
	natsSync    string
	// Bounds of the child process that compiles uploaded Wasm modules.
	wasmCompileTimeout time.Duration
	wasmCompileMemory  int // MiB
	payloads           string
	egress             string
	logFormat          string
	logLevel           string

	databaseURL    string
	s3Endpoint     string
	s3Bucket       string
	s3Region       string
	s3PathStyle    bool
	tracking       bool
	claimThreshold int
	filesRoot      string
	secretPrefix   string
	maxPayload     int
	otlpEndpoint   string
	// metricsTenantLabels: the data-plane series carry tenant and
	// integration labels (false for very large installations).
	metricsTenantLabels bool

	registry registryServeFlags // connector registry (openRegistry)
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the platform: embedded NATS, control plane, data plane and REST API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			envDefaults(cmd)
			err := serve(cmd.Context(), f)
			if err != nil && f.logFormat == "json" {
				// The last line is a record too, not main's "vrsky: ...".
				log, _ := newLogger(os.Stderr, "json", "error")
				log.Error("vrsky serve failed", "err", err)
				os.Exit(1)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "./data", "data directory (embedded NATS files, claim-checked payloads, Wasm compile cache, generated admin key)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the REST API and webhooks")
	fl.StringVar(&f.debugAddr, "debug-listen", "", "address of Go's /debug/pprof profiles (default: off; keep it on loopback)")
	fl.StringVar(&f.adminKey, "admin-key", "", "admin API key (default: generated on first start, kept in DATA/admin.key)")
	fl.StringVar(&f.natsURL, "nats-url", "", "external NATS cluster URL, or another node's --nats-listen address (default: embedded server); a user and password go in the URL")
	fl.IntVar(&f.natsReplica, "nats-replicas", 0, "replicas of the streams and buckets VRSky creates on --nats-url (0: the cluster's size as its servers advertise it, at most 3; 1 outside a cluster)")
	fl.StringVar(&f.natsKeys, "nats-keys", "", "operator keys file the servers at --nats-url trust (required with it): for another node's embedded server, a copy of its DATA/"+natsx.KeysFile+"; for an external cluster, the file `vrsky nats keys` wrote")
	fl.StringVar(&f.dedicated, "dedicated-nats", "local", "how tenants moved to placement dedicated get a NATS instance of their own: local (a nats-server child process per tenant, data in DATA/tenant-nats), kubernetes (a StatefulSet per tenant, in-cluster credentials), or off")
	fl.IntVar(&f.aboveRate, "dedicated-above-rate", 0, "move a shared tenant to a dedicated NATS instance once this node ingests more than this many of its messages per second (0: never by itself)")
	fl.Int64Var(&f.aboveBytes, "dedicated-above-bytes", 0, "move a shared tenant to a dedicated NATS instance once its account stores more than this many bytes (0: never by itself)")
	fl.StringVar(&f.dedicatedNS, "dedicated-nats-namespace", "", "with --dedicated-nats kubernetes: the namespace of the tenants' instances (default: $POD_NAMESPACE, else default)")
	fl.StringVar(&f.natsListen, "nats-listen", "", "client address of the embedded NATS server, for other nodes (port 0: a free one); they sign in with the operator keys in DATA/"+natsx.KeysFile+", generated on first start (default: no network listener, in-process only)")
	fl.StringVar(&f.natsSync, "nats-sync", "interval", "embedded NATS fsync policy: interval or always")
	fl.StringVar(&f.payloads, "payload-store", "auto", "where claim-checked payloads go: disk (DATA/payloads, one node only), objects (the object store: NATS or S3), or auto (disk with the embedded NATS server on its default address and no --s3-endpoint, else objects)")
	fl.StringVar(&f.egress, "egress", "private", "addresses the http and slack sinks may connect to: private (public, private networks and loopback, never link-local such as the cloud metadata service), public (public addresses only: for servers whose tenants must not reach its network), or all")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL for the control plane (default: NATS KV in the embedded or external NATS)")
	fl.StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3-compatible endpoint for payloads and modules (default: NATS Object Store); credentials from the standard AWS chain")
	fl.StringVar(&f.s3Bucket, "s3-bucket", "vrsky", "S3 bucket (created if missing)")
	fl.StringVar(&f.s3Region, "s3-region", "", "S3 signing region (default: AWS_REGION, else us-east-1)")
	fl.BoolVar(&f.s3PathStyle, "s3-path-style", true, "address buckets as endpoint/bucket (self-hosted S3 servers need it)")
	fl.BoolVar(&f.tracking, "tracking", true, "record where each message is for 7 days (GET .../messages/{id})")
	fl.IntVar(&f.claimThreshold, "claim-threshold", runtime.DefaultClaimThreshold, "payloads larger than this many bytes travel through the object store")
	fl.StringVar(&f.filesRoot, "files-root", "", "where the file source and sink read and write: each tenant's dir is ROOT/<tenant>/<dir> (default: DATA/files)")
	fl.StringVar(&f.secretPrefix, "secret-env-prefix", "VRSKY_SECRET_", "connector configs of tenant T may name (in *_env fields) only environment variables starting with PREFIX<T>__ (T upper case, - as _, then two underscores: tenant acme's are PREFIXACME__*, not acme-x's PREFIXACME_X__*); empty allows any variable, for single-tenant servers")
	fl.IntVar(&f.maxPayload, "max-payload", api.DefaultHookBodyLimit, "largest webhook payload accepted, in bytes (413 above)")
	fl.DurationVar(&f.wasmCompileTimeout, "wasm-compile-timeout", host.DefaultCompileTimeout, "uploaded Wasm modules compile in a child process, stopped after this long (the upload answers 422)")
	fl.IntVar(&f.wasmCompileMemory, "wasm-compile-memory", host.DefaultCompileMemory>>20, "memory bound of that child process, in MiB (the upload answers 422 above it)")
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "OpenTelemetry collector's OTLP/HTTP URL (http://host:4318; /v1/traces is added to a URL without a path): a span per stage of each message is exported there (default: off, no spans)")
	fl.BoolVar(&f.metricsTenantLabels, "metrics-tenant-labels", true, "label the /metrics series with tenant and integration; false sums them by stage, so the series count stays bounded on installations with very many tenants or integrations (docs/metrics.md)")
	addRegistryFlags(fl, &f.registry)
	return cmd
}

// openStores picks the control-plane store and the object store: the NATS
// defaults, or PostgreSQL and S3 when configured.
func openStores(ctx context.Context, f serveFlags, conn *natsx.Conn, log *slog.Logger) (store.Store, blob.Store, func(), error) {
	var st store.Store
	closeAll := func() {}
	if f.databaseURL != "" {
		pg, err := pgstore.Open(ctx, f.databaseURL, pgstore.WithLogger(log))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--database-url: %w", err)
		}
		st, closeAll = pg, pg.Close
		log.Info("control plane on PostgreSQL")
	} else {
		kv, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("control-plane store: %w", err)
		}
		st = kv
	}
	var bs blob.Store
	if f.s3Endpoint != "" {
		s3, err := s3blob.Open(ctx, s3blob.Config{Endpoint: f.s3Endpoint, Bucket: f.s3Bucket, Region: f.s3Region, UsePathStyle: f.s3PathStyle})
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("--s3-endpoint %s: %w", f.s3Endpoint, err)
		}
		bs = s3
		log.Info("object storage on S3", "endpoint", f.s3Endpoint, "bucket", f.s3Bucket)
	} else {
		obj, err := blob.NewNATS(ctx, conn.JS, "vrsky-objects", conn.Replicas)
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("object store: %w", err)
		}
		bs = obj
	}
	payloads := f.payloads
	if payloads == "auto" {
		payloads = "objects"
		// Only this process can read the disk: with another node possible
		// (an external NATS, or the embedded one listening where other
		// nodes may connect) payloads go where every node can read them.
		if f.natsURL == "" && f.natsListen == "" && f.s3Endpoint == "" {
			payloads = "disk"
		}
	}
	if payloads == "disk" { // serve checked the value
		dir, err := blob.NewDir(filepath.Join(f.data, "payloads"), f.natsSync == "always")
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("--payload-store disk: %w", err)
		}
		bs = blob.Split{Prefix: runtime.PayloadPrefix, Under: dir, Rest: bs}
		log.Info("claim-checked payloads on local disk", "dir", filepath.Join(f.data, "payloads"))
	}
	if sw, ok := bs.(blob.Sweeper); ok {
		go sweepPayloads(ctx, sw, log)
	}
	return st, bs, closeAll, nil
}

// payloadMaxAge is how old a claim-checked payload gets before
// sweepPayloads deletes it: twice the DLQ's retention, so that a dead
// letter replayed on its last day still finds its payload through another
// round.
const payloadMaxAge = 2 * runtime.DLQRetention

// sweepPayloads deletes, at start and then hourly, the payloads that no
// message can name any more: those of dead letters that expired, and the
// outputs of steps whose message failed later. Every node sweeps; the
// deletes are idempotent.
func sweepPayloads(ctx context.Context, sw blob.Sweeper, log *slog.Logger) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		n, err := sw.Sweep(ctx, runtime.PayloadPrefix, time.Now().Add(-payloadMaxAge))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("payload sweep", "err", err)
		case n > 0:
			log.Info("payload sweep: deleted unclaimed payloads", "objects", n, "older_than", payloadMaxAge)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// newLogger is vrsky serve's logger, writing to w. Its records keep one
// key per idea across the code: err for an error, tenant and integration
// apart (never "tenant/name"), msg_id for a message's id; and durations
// print as Go durations ("1.5s"), not as JSON's nanoseconds.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationsAsText}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

// durationsAsText writes a time.Duration as its String ("250ms"): the JSON
// handler would write an integer of nanoseconds.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// announceAdminKey shows a generated admin key once, whatever the log
// level: a banner in text logs, an info record in JSON ones (so that every
// line of the output stays JSON).
func announceAdminKey(log *slog.Logger, format, path, key string) {
	if format == "json" {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "admin API key generated (shown once, kept in admin_key_file)", 0)
		r.AddAttrs(slog.String("admin_key", key), slog.String("admin_key_file", path))
		_ = log.Handler().Handle(context.Background(), r) // past the level: the key is shown only now
		return
	}
	fmt.Fprintf(os.Stderr, "\nAdmin API key (generated, kept in %s):\n\n    %s\n\n", path, key)
}

func serve(ctx context.Context, f serveFlags) error {
	log, err := newLogger(os.Stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if f.wasmCompileTimeout <= 0 || f.wasmCompileMemory <= 0 {
		return errors.New("--wasm-compile-timeout and --wasm-compile-memory must be positive")
	}
	if f.natsSync != "interval" && f.natsSync != "always" {
		return fmt.Errorf("--nats-sync %q: want interval or always", f.natsSync)
	}
	if err := checkNATSFlags(f); err != nil {
		return err
	}
	if f.payloads != "auto" && f.payloads != "disk" && f.payloads != "objects" {
		return fmt.Errorf("--payload-store %q: want auto, disk or objects", f.payloads)
	}
	policy, err := egress.Parse(f.egress)
	if err != nil {
		return fmt.Errorf("--egress: %w", err)
	}
	if err := os.MkdirAll(f.data, 0o750); err != nil {
		return fmt.Errorf("--data %s: %w", f.data, err)
	}
	// One process per data dir, embedded NATS or not (the Wasm cache and
	// payloads live there too); the kernel releases the lock on any exit.
	lock, err := datadir.Acquire(f.data)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	adminKey, generated, err := loadAdminKey(f.data, f.adminKey)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	conn, err := natsx.Connect(ctx, natsx.Options{
		URL: f.natsURL, KeysFile: f.natsKeys, DataDir: f.data, Listen: f.natsListen,
		SyncAlways: f.natsSync == "always", Name: "vrsky", Logger: log, Replicas: f.natsReplica,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	switch {
	case conn.Embedded() && conn.ClientURL() != "":
		log.Info("embedded NATS running; other nodes join with --nats-url and --nats-keys (a copy of the operator keys)",
			"url", conn.ClientURL(), "keys", conn.KeysPath(), "sync", f.natsSync)
	case conn.Embedded():
		log.Info("embedded NATS running, in-process only (no network listener)", "sync", f.natsSync)
	default:
		log.Info("connected to NATS", "cluster", conn.NC.ConnectedClusterName(), "replicas", conn.Replicas)
	}
	st, bs, closeStores, err := openStores(ctx, f, conn, log)
	if err != nil {
		return err
	}
	defer closeStores()

	reg := prometheus.NewRegistry()
	metrics := registerMetrics(reg, f)
	filesRoot := f.filesRoot
	if filesRoot == "" {
		filesRoot = filepath.Join(f.data, "files")
	}
	limits := wasmcheck.DefaultLimits()
	limits.ModuleBytes = max(limits.ModuleBytes, f.registry.maxModuleSize)
	wasmRT, err := host.New(ctx, host.Config{
		CacheDir: filepath.Join(f.data, "wasm-cache"), Logger: log.With("component", "wasm"),
		CompileTimeout: f.wasmCompileTimeout, CompileMemory: int64(f.wasmCompileMemory) << 20, ModuleLimits: limits,
		Observer: metrics.WasmObserver(),
	})
	if err != nil {
		return fmt.Errorf("wasm host: %w", err)
	}
	defer wasmRT.Close(context.Background())
	// What Wasm steps' I/O functions reach, shipped and uploaded alike; the
	// engine gives each integration its own KV bucket and object prefix, and
	// NATS through a user of the tenant's own account.
	stepEnv := host.Env{Objects: bs}
	tenants := tenancy.New(conn, st, log.With("component", "tenancy"))
	defer tenants.Close()
	closeProv, err := setProvisioner(f, tenants, log)
	if err != nil {
		return err
	}
	defer closeProv()
	reg.MustRegister(tenants) // the dedicated instances' health
	reg.MustRegister(runtime.WasmPoolCollector(wasmRT.PoolStats), natsCollector(conn, tenants, f.metricsTenantLabels))
	cat, err := newCatalog(ctx, filesRoot, wasmRT, stepEnv, log)
	if err != nil {
		return err
	}
	connReg, err := openRegistry(f.registry, cat, wasmRT, st, bs, stepEnv, log)
	if err != nil {
		return err
	}
	defer connReg.Close(context.Background())
	var spans trace.TracerProvider // nil: no spans
	if f.otlpEndpoint != "" {
		tp, err := tracing.New(ctx, tracing.Config{Endpoint: f.otlpEndpoint, ServiceVersion: currentBuild().Version})
		if err != nil {
			return fmt.Errorf("--otlp-endpoint: %w", err)
		}
		defer func() {
			shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tp.Shutdown(shCtx); err != nil { // sends the spans still batched
				log.Warn("trace export at shutdown", "err", err)
			}
		}()
		spans = tp
		log.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", f.otlpEndpoint)
	}
	eng, err := runtime.NewEngine(runtime.Config{
		Conn: conn, Tenancy: tenants, Store: st, Catalog: cat, Metrics: metrics, Logger: log,
		Blobs: bs, ClaimThreshold: f.claimThreshold, DisableTracking: !f.tracking,
		SecretEnvPrefix: f.secretPrefix, Egress: policy,
		DedicatedAboveRate: f.aboveRate, DedicatedAboveBytes: f.aboveBytes,
		Tracing: spans,
	})
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Store: st, Engine: eng, NATS: conn, Tenancy: tenants, AdminKey: adminKey,
		Logger: log, Gatherer: reg, HTTPMetrics: api.NewHTTPMetrics(reg), Version: currentBuild().Version, HookBodyLimit: f.maxPayload,
		Registry: connReg, UI: ui.Bundle(),
	})
	if err != nil {
		return err
	}
	if f.debugAddr != "" {
		if err := serveDebug(ctx, f.debugAddr, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", f.listen, err)
	}

	engDone := make(chan error, 1)
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	go func() { engDone <- eng.Run(engCtx) }()
	apiDone := make(chan error, 1)
	go func() { apiDone <- srv.ListenOn(ln) }()

	url := "http://" + ln.Addr().String()
	log.Info("VRSky is running", "url", url, "version", currentBuild().Version, "commit", currentBuild().Commit)
	if generated {
		announceAdminKey(log, f.logFormat, filepath.Join(f.data, "admin.key"), adminKey)
	}

	select {
	case <-ctx.Done():
	case err := <-apiDone:
		if err != nil {
			log.Error("API server stopped", "err", err)
		}
	}
	log.Info("shutting down: no new requests, draining pipelines")
	shCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		log.Warn("API shutdown", "err", err)
	}
	stopEngine()
	<-engDone
	return nil
}

// checkNATSFlags rejects NATS flags that cannot work: the operator keys
// sign in to --nats-url (the embedded server keeps its own), which cannot
// do without them.
func checkNATSFlags(f serveFlags) error {
	switch {
	case f.natsURL == "" && f.natsKeys != "":
		return errors.New("--nats-keys signs in to --nats-url; the embedded server keeps its own keys in DATA/" + natsx.KeysFile)
	case f.natsURL != "" && f.natsKeys == "":
		return errors.New("--nats-url needs --nats-keys: VRSky runs NATS in operator mode, an account per tenant (see docs/tenancy.md; `vrsky nats keys` makes the file)")
	case f.natsReplica < 0 || f.natsReplica > 5:
		return fmt.Errorf("--nats-replicas %d: want 0 (the cluster's size) to 5", f.natsReplica)
	case f.natsURL == "" && f.natsReplica > 1:
		return errors.New("--nats-replicas needs --nats-url: the embedded server is one server, its streams have one replica")
	}
	return nil
}

// builtins are the native connectors, the file ones confined to
// filesRoot/<tenant>.
func builtins(filesRoot string) []runtime.Connector {
	fileSource, fileSink := fileconn.Confined(filesRoot)
	return []runtime.Connector{
		httpconn.Webhook, httpconn.Sink,
		fileSource, fileSink,
		postgres.Sink, postgrescdc.Source,
		slack.Sink, schedule.Source,
	}
}

// newCatalog is the catalogue of vrsky serve: the built-in connectors
// (the file ones under filesRoot) and the Wasm steps shipped in the binary,
// compiled by rt when a pipeline first needs one; their I/O goes to env.
// `vrsky integration validate` checks specs against the same catalogue.
func newCatalog(ctx context.Context, filesRoot string, rt *host.Runtime, env host.Env, log *slog.Logger) (*runtime.Catalog, error) {
	cat, err := runtime.NewCatalog(builtins(filesRoot)...)
	if err != nil {
		return nil, err
	}
	if err := registerWasmSteps(ctx, cat, rt, env, log); err != nil {
		return nil, err
	}
	return cat, nil
}

// registerWasmSteps compiles the Wasm connectors that ship inside the
// binary and adds them to the catalogue. A module missing from a dev build
// (make wasm not run) is skipped with a warning that says how to build it.
func registerWasmSteps(ctx context.Context, cat *runtime.Catalog, rt *host.Runtime, env host.Env, log *slog.Logger) error {
	for _, b := range wasmconnectors.List() {
		if b.Err != nil {
			log.Warn("shipped Wasm connector not available", "connector", b.Name, "err", b.Err)
			continue
		}
		c, err := registry.ShippedStep(ctx, b.Manifest, b.Wasm, rt, env, log)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
		if err := cat.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ---- metrics ----------------------------------------------------------------

// registerMetrics registers the process's own series (Go runtime, process,
// build info) and returns the data plane's, all in reg (docs/metrics.md).
func registerMetrics(reg *prometheus.Registry, f serveFlags) *runtime.Metrics {
	b := currentBuild()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vrsky_build_info", Help: "Always 1: the running binary's version, commit and Go version, as labels.",
			ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
		}, func() float64 { return 1 }))
	return runtime.NewMetricsWith(reg, runtime.MetricsOptions{NoTenantLabels: !f.metricsTenantLabels})
}

// natsCollector reads the monitoring data of the embedded NATS server (none
// with --nats-url) and of every tenant's dedicated instance.
func natsCollector(conn *natsx.Conn, tenants *tenancy.Manager, tenantLabels bool) prometheus.Collector {
	hc := &http.Client{Timeout: 3 * time.Second}
	platform := conn.Monitor()
	return natsx.NewCollector(func(ctx context.Context) []natsx.Monitored {
		var out []natsx.Monitored
		if platform != nil {
			out = append(out, natsx.Monitored{Read: platform})
		}
		hs, _ := tenants.Health(ctx) // a failed listing: no tenant instances this scrape
		for _, h := range hs {
			read := natsx.HTTPMonitor(hc, h.Monitor)
			if h.Monitor == "" || !h.Ready {
				why := cmp.Or(h.Err, "no monitoring address")
				read = func(context.Context) (natsx.Snapshot, error) { return natsx.Snapshot{}, errors.New(why) }
			}
			out = append(out, natsx.Monitored{Tenant: h.Tenant, Read: read})
		}
		return out
	}, tenantLabels)
}

// ---- connector registry ---------------------------------------------------

// openRegistry opens the connector registry: uploaded Wasm steps, resolved
// by cat on demand (tenant-aware, compiled on first use), metadata in st,
// modules in bs. Uploaded modules get the same capability backends as the
// shipped ones (env).
func openRegistry(f registryServeFlags, cat *runtime.Catalog, rt *host.Runtime,
	st store.Store, bs blob.Store, env host.Env, log *slog.Logger) (*registry.Registry, error) {
	rs, ok := st.(registry.Store)
	if !ok {
		return nil, fmt.Errorf("connector registry: the control-plane store %T keeps no connector metadata", st)
	}
	cfg := registry.Config{
		Store: rs, Blobs: bs, Host: rt, Catalog: cat, Shipped: map[string]registry.Shipped{},
		Env:           env,
		MaxModuleSize: f.maxModuleSize, RequireSignatures: f.requireSignatures, SignedTenants: f.signedTenants,
		Logger: log.With("component", "registry"),
	}
	for _, b := range wasmconnectors.List() {
		sh := registry.Shipped{Manifest: b.Manifest}
		if b.Err == nil {
			sh.Digest, sh.Size, sh.Wasm = b.Digest, b.Size, b.Wasm
		}
		cfg.Shipped[b.Name] = sh
	}
	if f.trustedKeys != "" {
		doc, err := os.ReadFile(f.trustedKeys)
		if err != nil {
			return nil, fmt.Errorf("--registry-trusted-keys: %w", err)
		}
		if cfg.TrustedKeys, err = registry.ParsePublicKeys(doc); err != nil {
			return nil, fmt.Errorf("--registry-trusted-keys %s: %w", f.trustedKeys, err)
		}
	}
	if (f.requireSignatures || len(f.signedTenants) > 0) && len(cfg.TrustedKeys) == 0 {
		return nil, errors.New("--registry-require-signatures and --registry-signed-tenants need --registry-trusted-keys")
	}
	return registry.New(cfg)
}

// ---- end of connector registry ---------------------------------------------

// loadAdminKey returns the key from the flag, else the one kept in the data
// dir, else a new one it keeps there (0600). generated is true the first time.
func loadAdminKey(dataDir, flag string) (key string, generated bool, err error) {
	if flag != "" {
		return flag, false, nil
	}
	path := filepath.Join(dataDir, "admin.key")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return strings.TrimSpace(string(b)), false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read admin key: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	key = "vrsk_admin_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("keep admin key: %w", err)
	}
	return key, true, nil
}

// serveDebug serves Go's profiles on addr until ctx ends, on a listener of
// its own so they are never reachable through the API's address.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	log.Info("profiles on /debug/pprof", "addr", ln.Addr().String())
	return nil
}
