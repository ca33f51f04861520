package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/vrsky/vrsky/internal/testenv/pgcluster"
)

// demoFlags are `vrsky demo`'s settings.
type demoFlags struct {
	once        bool
	load        int
	concurrency int
	keep        bool
	timeout     time.Duration
}

// demoTenant is the tenant the demos run in; its secrets are
// VRSKY_SECRET_DEMO__*.
const demoTenant = "demo"

// demoNames are the four demos, in the order docs/demos.md numbers them.
var demoNames = []string{"github-slack", "csv-postgres", "cdc-http", "orders"}

// newDemoCmd is `vrsky demo NAME`: one of the four demos, set up against
// local stand-ins and a `vrsky serve` of its own, with sample traffic.
func newDemoCmd() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo NAME",
		Short: "Run one of the four demos against local stand-ins: " + strings.Join(demoNames, ", "),
		Long: `demo starts everything a demo needs on this machine, on loopback only: a vrsky
serve on a temporary data dir, a Slack-compatible receiver (it takes Slack
incoming-webhook posts and prints them), an HTTP API receiver, a throwaway
PostgreSQL (Debian's postgresql binaries; run as the postgres user when root)
and the CSV folder, as the demo needs. It creates tenant demo, renders the
demo's template, creates and starts the integration, sends sample input and
prints what arrived where:

  github-slack  a signed GitHub push webhook, and an unsigned one (refused 401) → Slack
  csv-postgres  a CSV file dropped in the folder → rows in PostgreSQL
  cdc-http      SQL insert, update, delete → order events at the HTTP API
  orders        orders → PostgreSQL, big ones → Slack; Slack is down first, so the
                big order is retried, dead-lettered, then replayed once Slack is back

Then it keeps everything running until Ctrl-C, printing what arrives, with the
commands to try by hand; --once exits after the samples. --load N sends N
messages as fast as the demo takes them and prints msgs/s and how many were
lost (make bench runs it).`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: demoNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(demoNames, args[0]) {
				return fmt.Errorf("no demo %q: the demos are %s", args[0], strings.Join(demoNames, ", "))
			}
			if f.load < 0 || f.concurrency < 1 {
				return errors.New("--load must be 0 or more and --concurrency at least 1")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.once, "once", false, "exit after the samples (and the load run) instead of waiting for Ctrl-C")
	fl.IntVar(&f.load, "load", 0, "after the samples, send this many messages as fast as they are taken and print msgs/s and lost")
	fl.IntVar(&f.concurrency, "concurrency", 32, "with --load: requests in flight at once")
	fl.BoolVar(&f.keep, "keep", false, "keep the temporary dir (vrsky's data and log, PostgreSQL's) at exit")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long to wait for each thing the demo expects to arrive")
	return cmd
}

// demo is one running demo: the stand-ins, the server and the tenant.
type demo struct {
	name  string
	out   io.Writer
	f     demoFlags
	work  string
	serve *exec.Cmd
	// serveExited is closed once serve has exited (Wait returned).
	serveExited chan struct{}
	log         string // serve's output file
	base        string // http://addr of vrsky serve
	admin       string
	c           *client // tenant demo's client
	hooks       *http.Client

	slack, api *receiver
	pg         *pgcluster.Cluster
	dsn        string
	db         *pgxpool.Pool
	secret     string // demo 1's webhook secret
	files      string // the tenant's files root, DATA/files/demo
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, "==> "+format+"\n", a...) }

// runDemo runs demo name until ctx ends (or after the samples with --once).
func runDemo(ctx context.Context, out io.Writer, name string, f demoFlags) (err error) {
	d := &demo{name: name, out: out, f: f, hooks: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	if d.work, err = os.MkdirTemp("", "vrsky-demo-"); err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer d.cleanup()
	d.say("demo %s: working in %s (loopback only; removed at exit unless --keep)", name, d.work)
	if err := d.startStandIns(); err != nil {
		return err
	}
	if err := d.startServe(ctx); err != nil {
		return err
	}
	if err := d.createTenant(); err != nil {
		return err
	}
	if err := d.prepare(ctx); err != nil {
		return err
	}
	if err := d.apply(ctx); err != nil {
		return err
	}
	if err := d.samples(ctx); err != nil {
		return fmt.Errorf("demo %s: %w (vrsky serve's log: %s, kept)", name, err, d.keepLog())
	}
	d.say("demo %s works", name)
	if f.load > 0 {
		if err := d.loadRun(ctx); err != nil {
			return fmt.Errorf("demo %s load run: %w (vrsky serve's log: %s, kept)", name, err, d.keepLog())
		}
	}
	if f.once {
		return nil
	}
	d.tryByHand()
	d.say("everything keeps running; what arrives is printed below. Ctrl-C stops it all")
	<-ctx.Done()
	fmt.Fprintln(d.out)
	d.say("stopping")
	return nil
}

// keepLog keeps the work dir so serve's log can be read, and names it.
func (d *demo) keepLog() string {
	d.f.keep = true
	return d.log
}

func (d *demo) cleanup() {
	if d.serveExited != nil {
		_ = d.serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.serveExited:
		case <-time.After(30 * time.Second):
			_ = d.serve.Process.Kill()
			<-d.serveExited
		}
	}
	if d.db != nil {
		d.db.Close()
	}
	if d.pg != nil {
		if err := d.pg.Close(); err != nil {
			fmt.Fprintf(d.out, "stop PostgreSQL: %v\n", err)
		}
	}
	for _, r := range []*receiver{d.slack, d.api} {
		if r != nil {
			r.close()
		}
	}
	if d.f.keep {
		d.say("kept %s", d.work)
		return
	}
	_ = os.RemoveAll(d.work)
}

func (d *demo) needs(what string) bool {
	switch what {
	case "slack":
		return d.name == "github-slack" || d.name == "orders"
	case "api":
		return d.name == "cdc-http"
	case "postgres":
		return d.name != "github-slack"
	}
	return false
}

func (d *demo) startStandIns() (err error) {
	if d.needs("slack") {
		if d.slack, err = startReceiver("slack", d.out); err != nil {
			return err
		}
		d.say("Slack stand-in (takes incoming-webhook posts) at %s", d.slack.url())
	}
	if d.needs("api") {
		if d.api, err = startReceiver("api", d.out); err != nil {
			return err
		}
		d.say("HTTP API stand-in at %s", d.api.url())
	}
	if d.needs("postgres") {
		d.say("starting a throwaway PostgreSQL (wal_level=logical)")
		if d.pg, err = pgcluster.StartClusterWith(pgcluster.ClusterOptions{}); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if d.dsn, err = d.pg.EnsureDatabase(ctx, "shop"); err != nil {
			return err
		}
		if d.db, err = pgxpool.New(ctx, d.dsn); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		d.say("PostgreSQL at 127.0.0.1:%d, database shop", d.pg.Port())
	}
	return nil
}

// startServe runs this binary's `vrsky serve` on a temp data dir with the
// demo's secrets in its environment, and waits until it is ready.
func (d *demo) startServe(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the vrsky binary: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	d.base, d.admin, d.secret = "http://"+addr, "vrsk_admin_"+randHex(16), randHex(16)
	data := filepath.Join(d.work, "data")
	d.files = filepath.Join(data, "files", demoTenant)
	d.log = filepath.Join(d.work, "serve.log")
	logf, err := os.Create(d.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	d.serve = exec.Command(exe, "serve", "--data", data, "--listen", addr, "--admin-key", d.admin)
	env := []string{}
	for _, kv := range os.Environ() { // the demo's settings, not the shell's
		if !strings.HasPrefix(kv, "VRSKY_") {
			env = append(env, kv)
		}
	}
	prefix := "VRSKY_SECRET_" + strings.ToUpper(demoTenant) + "__"
	env = append(env, prefix+"GITHUB_SECRET="+d.secret, prefix+"DB="+d.dsn)
	if d.slack != nil {
		env = append(env, prefix+"SLACK="+d.slack.url())
	}
	d.serve.Env, d.serve.Stdout, d.serve.Stderr = env, logf, logf
	d.say("starting vrsky serve on %s (log: %s)", d.base, d.log)
	if err := d.serve.Start(); err != nil {
		return fmt.Errorf("start vrsky serve: %w", err)
	}
	exited := make(chan struct{})
	d.serveExited = exited
	go func() { _ = d.serve.Wait(); close(exited) }()
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := http.Get(d.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("vrsky serve exited before it was ready: see %s", d.keepLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vrsky serve not ready after a minute: see %s", d.keepLog())
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *demo) createTenant() error {
	admin := &client{base: d.base, key: d.admin, http: &http.Client{Timeout: requestTimeout}}
	var t struct {
		APIKey string `json:"api_key"`
	}
	body, _ := json.Marshal(map[string]string{"name": demoTenant})
	if err := admin.do(http.MethodPost, "/api/v1/tenants", "application/json", body, &t); err != nil {
		return fmt.Errorf("create tenant %s: %w", demoTenant, err)
	}
	d.c = &client{base: d.base, key: t.APIKey, http: &http.Client{Timeout: requestTimeout}}
	d.say("created tenant %s (its API key: %s)", demoTenant, t.APIKey)
	return nil
}

// demoTables are the tables each demo writes to or follows.
var demoTables = map[string]string{
	"csv-postgres": `CREATE TABLE customers (id integer PRIMARY KEY, name text, email text, country text)`,
	"cdc-http": `CREATE TABLE orders (id serial PRIMARY KEY, customer text, total numeric(10,2), status text);
		ALTER TABLE orders REPLICA IDENTITY FULL`, // a delete carries the whole row, not only its key
	"orders": `CREATE TABLE orders (id integer PRIMARY KEY, customer text, total numeric, items integer)`,
}

// prepare creates what the integration expects to exist: its table, its folder.
func (d *demo) prepare(ctx context.Context) error {
	if ddl, ok := demoTables[d.name]; ok {
		if _, err := d.db.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("create the demo's table: %w", err)
		}
		d.say("PostgreSQL: %s", strings.Join(strings.Fields(ddl), " "))
	}
	if d.name == "csv-postgres" {
		if err := os.MkdirAll(filepath.Join(d.files, "incoming"), 0o755); err != nil {
			return err
		}
		d.say("watched folder: %s", filepath.Join(d.files, "incoming"))
	}
	return nil
}

// demoParams are the template parameters each demo renders with.
func (d *demo) params() map[string]any {
	prefix := "VRSKY_SECRET_" + strings.ToUpper(demoTenant) + "__"
	conc := 1
	if d.f.load > 0 {
		conc = 16 // the stand-in has no rate limit, unlike Slack
	}
	switch d.name {
	case "github-slack":
		return map[string]any{"secret_env": prefix + "GITHUB_SECRET", "slack_url_env": prefix + "SLACK", "slack_concurrency": conc}
	case "csv-postgres":
		return map[string]any{"dsn_env": prefix + "DB", "table": "customers"}
	case "cdc-http":
		return map[string]any{"dsn_env": prefix + "DB", "url": d.api.url()}
	default: // orders: short backoff, so the dead letter comes within seconds
		return map[string]any{"dsn_env": prefix + "DB", "slack_url_env": prefix + "SLACK", "slack_concurrency": conc,
			"big_order": 1000, "max_attempts": 3, "initial_backoff": "200ms"}
	}
}

// apply renders the demo's template on the server, creates the integration
// and starts it, and waits until it runs.
func (d *demo) apply(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"parameters": d.params()})
	var r struct {
		YAML string `json:"yaml"`
	}
	if err := d.c.do(http.MethodPost, "/api/v1/templates/"+d.name+"/render", "application/json", body, &r); err != nil {
		return fmt.Errorf("render template %s: %w", d.name, err)
	}
	var pj []string
	for k, v := range d.params() {
		pj = append(pj, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(pj)
	d.say("rendered template %s (%s)", d.name, strings.Join(pj, " "))
	if err := d.c.do(http.MethodPost, "/api/v1/integrations", "application/yaml", []byte(r.YAML), nil); err != nil {
		return fmt.Errorf("create integration %s: %w", d.name, err)
	}
	if err := d.c.do(http.MethodPost, integrationPath(d.name)+"/start", "", nil, nil); err != nil {
		return fmt.Errorf("start integration %s: %w", d.name, err)
	}
	err := d.waitFor(ctx, "integration "+d.name+" running", func() (bool, error) {
		var v integrationView
		if err := d.c.do(http.MethodGet, integrationPath(d.name), "", nil, &v); err != nil {
			return false, err
		}
		if v.Status.State == "error" {
			return false, fmt.Errorf("integration %s: %s", d.name, v.Status.Error)
		}
		return v.state() == "running", nil
	})
	if err != nil {
		return err
	}
	if d.name == "cdc-http" { // the source creates its slot as it starts: changes count from then on
		err = d.waitFor(ctx, "the CDC source's replication slot", func() (bool, error) {
			var n int
			err := d.db.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND active`).Scan(&n)
			return n > 0, err
		})
		if err != nil {
			return err
		}
	}
	d.say("integration %s created and running", d.name)
	return nil
}

// waitFor polls cond until it holds, fails, or --timeout passes.
func (d *demo) waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d.f.timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: nothing after %s", what, d.f.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// within is ctx bounded by --timeout.
func (d *demo) within(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.f.timeout)
}

// hook posts body to the tenant's webhook path, signed with the demo's
// secret when sign; it returns the status.
func (d *demo) hook(path string, body []byte, sign bool) (int, error) {
	req, err := http.NewRequest(http.MethodPost, d.base+"/hooks/"+demoTenant+"/"+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if sign {
		mac := hmac.New(sha256.New, []byte(d.secret))
		mac.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-GitHub-Event", "push")
	}
	resp, err := d.hooks.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (d *demo) rows(ctx context.Context, query string) (int, error) {
	var n int
	err := d.db.QueryRow(ctx, query).Scan(&n)
	return n, err
}

// samples sends the demo's sample input and checks that it arrived.
func (d *demo) samples(ctx context.Context) error {
	switch d.name {
	case "github-slack":
		return d.sampleGitHub(ctx)
	case "csv-postgres":
		return d.sampleCSV(ctx)
	case "cdc-http":
		return d.sampleCDC(ctx)
	default:
		return d.sampleOrders(ctx)
	}
}

func pushEvent(n int, msg string) []byte {
	commits := strings.TrimSuffix(strings.Repeat("{},", n), ",")
	return []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"full_name":"acme/widgets"},"sender":{"login":"octocat"},"commits":[%s],"head_commit":{"message":%q}}`, commits, msg))
}

func (d *demo) sampleGitHub(ctx context.Context) error {
	d.say("POST /hooks/%s/github: a push event signed with X-Hub-Signature-256", demoTenant)
	code, err := d.hook("github", pushEvent(2, "Fix it"), true)
	if err != nil || code != http.StatusAccepted {
		return fmt.Errorf("the signed delivery: status %d, %v (want 202)", code, err)
	}
	fmt.Fprintf(d.out, "  vrsky ← 202 Accepted\n")
	d.say("POST /hooks/%s/github: the same event without a signature", demoTenant)
	code, err = d.hook("github", pushEvent(1, "Not signed"), false)
	if err != nil || code != http.StatusUnauthorized {
		return fmt.Errorf("the unsigned delivery: status %d, %v (want 401)", code, err)
	}
	fmt.Fprintf(d.out, "  vrsky ← 401 Unauthorized (bad_signature): it never enters VRSky\n")
	wctx, cancel := d.within(ctx)
	defer cancel()
	if err := d.slack.waitCount(wctx, 1); err != nil {
		return err
	}
	want := "octocat pushed 2 commit(s) to acme/widgets main: Fix it"
	if got := d.slack.messages(); len(got) != 1 || got[0] != want {
		return fmt.Errorf("the Slack stand-in got %q, want [%q]", got, want)
	}
	return nil
}

// writeCSV writes name into the watched folder whole: written under a
// name the source ignores, then renamed.
func (d *demo) writeCSV(name string, content []byte) error {
	dir := filepath.Join(d.files, "incoming")
	tmp := filepath.Join(dir, "."+name+".part")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

func (d *demo) sampleCSV(ctx context.Context) error {
	csv := "id,name,email,country\n1,Ada,ada@example.com,UK\n2,Grace,grace@example.com,US\n3,Edsger,edsger@example.com,NL\n"
	d.say("dropping customers.csv (3 rows) into incoming/")
	if err := d.writeCSV("customers.csv", []byte(csv)); err != nil {
		return err
	}
	err := d.waitFor(ctx, "3 rows in customers", func() (bool, error) {
		n, err := d.rows(ctx, `SELECT count(*) FROM customers`)
		return n >= 3, err
	})
	if err != nil {
		return err
	}
	rows, err := d.db.Query(ctx, `SELECT id, name, email, country FROM customers ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var name, email, country string
		if err := rows.Scan(&id, &name, &email, &country); err != nil {
			return err
		}
		fmt.Fprintf(d.out, "  postgres ← customers: %d | %s | %s | %s\n", id, name, email, country)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	processed := filepath.Join(d.files, "incoming", "processed", "customers.csv")
	if err := d.waitFor(ctx, "customers.csv in processed/", func() (bool, error) {
		_, err := os.Stat(processed)
		return err == nil, nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "  files    → customers.csv moved to incoming/processed/\n")
	return nil
}

func (d *demo) sampleCDC(ctx context.Context) error {
	for _, q := range []string{
		`INSERT INTO orders (customer, total, status) VALUES ('Ada', 12.50, 'new')`,
		`UPDATE orders SET status = 'paid' WHERE id = 1`,
		`DELETE FROM orders WHERE id = 1`,
	} {
		d.say("PostgreSQL: %s", q)
		if _, err := d.db.Exec(ctx, q); err != nil {
			return err
		}
	}
	wctx, cancel := d.within(ctx)
	defer cancel()
	if err := d.api.waitCount(wctx, 3); err != nil {
		return err
	}
	want := []string{
		`{"customer":"Ada","event":"order.created","id":1,"status":"new","total":12.5}`,
		`{"customer":"Ada","event":"order.updated","id":1,"status":"paid","total":12.5}`,
		`{"customer":"Ada","event":"order.deleted","id":1,"status":"paid","total":12.5}`,
	}
	// Each change arrives once; the order may differ (examples/cdc-http/README.md).
	got := d.api.messages()
	for _, w := range want {
		n := 0
		for _, g := range got {
			if jsonEqual([]byte(g), []byte(w)) {
				n++
			}
		}
		if n != 1 || len(got) != len(want) {
			return fmt.Errorf("the API got %q, want each of %q once", got, want)
		}
	}
	return nil
}

// order is a sample order: total = price*qty summed.
func order(id int, customer string, price, qty int) []byte {
	return []byte(fmt.Sprintf(`{"order_id":%d,"customer":{"name":%q},"items":[{"sku":"A1","price":%d,"qty":%d}]}`, id, customer, price, qty))
}

func (d *demo) sampleOrders(ctx context.Context) error {
	d.say("Slack is down: the stand-in answers 503 until the replay")
	d.slack.down.Store(true)
	for _, o := range []struct {
		id          int
		who         string
		price, qtys int
	}{{5, "Grace", 40, 2}, {6, "Edsger", 150, 3}, {7, "Ada", 600, 2}} {
		d.say("POST /hooks/%s/orders: order %d from %s, total %d", demoTenant, o.id, o.who, o.price*o.qtys)
		code, err := d.hook("orders", order(o.id, o.who, o.price, o.qtys), false)
		if err != nil || code != http.StatusAccepted {
			return fmt.Errorf("order %d: status %d, %v (want 202)", o.id, code, err)
		}
	}
	if err := d.waitFor(ctx, "3 orders in PostgreSQL", func() (bool, error) {
		n, err := d.rows(ctx, `SELECT count(*) FROM orders`)
		return n >= 3, err
	}); err != nil {
		return err
	}
	rows, err := d.db.Query(ctx, `SELECT id, customer, total::text, items FROM orders ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, items int
		var who, total string
		if err := rows.Scan(&id, &who, &total, &items); err != nil {
			rows.Close()
			return err
		}
		fmt.Fprintf(d.out, "  postgres ← orders: %d | %s | %s | %d item(s)\n", id, who, total, items)
	}
	rows.Close()
	var dl []deadLetterView
	if err := d.waitFor(ctx, "the big order's dead letter", func() (bool, error) {
		var page struct {
			Items []deadLetterView `json:"items"`
		}
		err := d.c.do(http.MethodGet, dlqPath(d.name), "", nil, &page)
		dl = page.Items
		return len(dl) > 0, err
	}); err != nil {
		return err
	}
	if len(dl) != 1 || dl[0].Stage != "sink:slack" {
		return fmt.Errorf("dead letters %+v: want one, of stage sink:slack", dl)
	}
	fmt.Fprintf(d.out, "  dlq      ← %s, after %d attempts: %s\n", dl[0].Stage, dl[0].Attempts, oneLine(dl[0].Error, 120))
	if n := d.slack.count(); n != 0 {
		return fmt.Errorf("the Slack stand-in took %d messages while down", n)
	}
	d.say("Slack is back; replaying the dead letters (POST %s/replay)", dlqPath(d.name))
	d.slack.down.Store(false)
	var rep struct {
		Replayed int `json:"replayed"`
	}
	if err := d.c.do(http.MethodPost, dlqPath(d.name)+"/replay", "", nil, &rep); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "  vrsky    ← replayed %d\n", rep.Replayed)
	wctx, cancel := d.within(ctx)
	defer cancel()
	if err := d.slack.waitCount(wctx, 1); err != nil {
		return err
	}
	want := ":moneybag: Big order 7 from Ada: 1200 (1 items)"
	if got := d.slack.messages(); len(got) != 1 || got[0] != want {
		return fmt.Errorf("the Slack stand-in got %q, want [%q]", got, want)
	}
	return d.waitFor(ctx, "an empty DLQ", func() (bool, error) {
		var page struct {
			Items []deadLetterView `json:"items"`
		}
		err := d.c.do(http.MethodGet, dlqPath(d.name), "", nil, &page)
		return len(page.Items) == 0, err
	})
}

// tryByHand prints commands that feed the running demo.
func (d *demo) tryByHand() {
	d.say("try it by hand (in another terminal):")
	fmt.Fprintf(d.out, "  export VRSKY_URL=%s VRSKY_API_KEY=%s\n", d.base, d.c.key)
	switch d.name {
	case "github-slack":
		fmt.Fprintf(d.out, "  body='%s'\n", pushEvent(1, "By hand"))
		fmt.Fprintf(d.out, "  sig=sha256=$(printf %%s \"$body\" | openssl dgst -sha256 -hmac %s -r | cut -d' ' -f1)\n", d.secret)
		fmt.Fprintf(d.out, "  curl -s -X POST $VRSKY_URL/hooks/%s/github -H 'Content-Type: application/json' -H \"X-Hub-Signature-256: $sig\" -d \"$body\"\n", demoTenant)
	case "csv-postgres":
		fmt.Fprintf(d.out, "  printf 'id,name,email,country\\n10,Alan,alan@example.com,UK\\n' > %s/more.csv\n", filepath.Join(d.files, "incoming"))
		fmt.Fprintf(d.out, "  psql '%s' -c 'SELECT * FROM customers'\n", d.dsn)
	case "cdc-http":
		fmt.Fprintf(d.out, "  psql '%s' -c \"INSERT INTO orders (customer, total, status) VALUES ('Alan', 99, 'new')\"\n", d.dsn)
	default:
		fmt.Fprintf(d.out, "  curl -s -X POST $VRSKY_URL/hooks/%s/orders -H 'Content-Type: application/json' -d '%s'\n", demoTenant, order(8, "Alan", 700, 2))
		fmt.Fprintf(d.out, "  psql '%s' -c 'SELECT * FROM orders'\n", d.dsn)
		fmt.Fprintf(d.out, "  ./bin/vrsky dlq list orders\n")
	}
}

// loadRun sends --load messages through the demo as fast as it takes them
// and reports msgs/s (first send to last arrival) and how many were lost.
func (d *demo) loadRun(ctx context.Context) error {
	n := d.f.load
	for _, r := range []*receiver{d.slack, d.api} {
		if r != nil {
			r.quiet.Store(true) // no line per message under load
			defer r.quiet.Store(false)
		}
	}
	d.say("load: %d messages (%d in flight)", n, d.f.concurrency)
	start := time.Now()
	var arrived func() (int, error)
	want := n
	switch d.name {
	case "github-slack":
		base := d.slack.count()
		if err := d.parallel(ctx, n, func(i int) error {
			code, err := d.hook("github", pushEvent(1, fmt.Sprintf("load %d", i)), true)
			return wantAccepted(code, err)
		}); err != nil {
			return err
		}
		arrived = func() (int, error) { return d.slack.count() - base, nil }
	case "csv-postgres":
		// Files of 1,000 rows (the batch size), ids after the samples'.
		const perFile = 1000
		for f := 0; f*perFile < n; f++ {
			var b strings.Builder
			b.WriteString("id,name,email,country\n")
			for i := f * perFile; i < min(n, (f+1)*perFile); i++ {
				fmt.Fprintf(&b, "%d,Customer %d,c%d@example.com,UK\n", 1000+i, i, i)
			}
			if err := d.writeCSV(fmt.Sprintf("load-%04d.csv", f), []byte(b.String())); err != nil {
				return err
			}
		}
		arrived = func() (int, error) { return d.rows(ctx, `SELECT count(*) FROM customers WHERE id >= 1000`) }
	case "cdc-http":
		base := d.api.count()
		// Transactions of 100 rows, as an application would commit them.
		for i := 0; i < n; i += 100 {
			if _, err := d.db.Exec(ctx, `INSERT INTO orders (customer, total, status) SELECT 'Load ' || g, g, 'new' FROM generate_series($1::int, $2::int) g`, i, min(n, i+100)-1); err != nil {
				return err
			}
		}
		arrived = func() (int, error) { return d.api.count() - base, nil }
	default:
		// Every 10th order is big: PostgreSQL gets n, Slack n/10.
		base := d.slack.count()
		bigs := (n + 9) / 10
		want = n + bigs
		if err := d.parallel(ctx, n, func(i int) error {
			price := 10
			if i%10 == 0 {
				price = 2000
			}
			code, err := d.hook("orders", order(1000+i, fmt.Sprintf("Customer %d", i), price, 1), false)
			return wantAccepted(code, err)
		}); err != nil {
			return err
		}
		arrived = func() (int, error) {
			rows, err := d.rows(ctx, `SELECT count(*) FROM orders WHERE id >= 1000`)
			return rows + d.slack.count() - base, err
		}
	}
	sent := time.Since(start)
	got := 0
	err := d.waitFor(ctx, fmt.Sprintf("%d deliveries", want), func() (bool, error) {
		var err error
		got, err = arrived()
		return got >= want, err
	})
	elapsed := time.Since(start)
	if err != nil && !strings.Contains(err.Error(), "nothing after") {
		return err
	}
	fmt.Fprintf(d.out, "load %s: %d messages, %d deliveries expected, %d arrived, lost %d; sent in %.2fs, all delivered in %.2fs: %.0f msgs/s\n",
		d.name, n, want, got, want-got, sent.Seconds(), elapsed.Seconds(), float64(n)/elapsed.Seconds())
	if got < want {
		return fmt.Errorf("lost %d of %d deliveries", want-got, want)
	}
	return nil
}

func wantAccepted(code int, err error) error {
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("webhook answered %d, want 202", code)
	}
	return nil
}

// parallel runs send(0..n-1) on --concurrency workers; the first error stops it.
func (d *demo) parallel(ctx context.Context, n int, send func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range d.f.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := send(i); err != nil {
					once.Do(func() { first = fmt.Errorf("message %d: %w", i, err) })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
