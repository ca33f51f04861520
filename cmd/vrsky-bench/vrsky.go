package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// vrskyProc is a `vrsky serve` subprocess on a temp data dir.
type vrskyProc struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	logPath string
	logFile *os.File
	exited  chan struct{}
	waitErr error
}

// startVrsky starts `bin serve` with its data in dataDir, extra flags
// appended, and its stderr and stdout in logPath.
func startVrsky(bin, dataDir, logPath, adminKey, natsSync string, extra []string) (*vrskyProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("vrsky log: %w", err)
	}
	cmd := exec.Command(bin, "serve",
		"--data", dataDir,
		"--listen", listen,
		"--admin-key", adminKey,
		"--nats-sync", natsSync,
		"--log-level", "warn",
	)
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If the bench dies without cleaning up, the server dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &vrskyProc{cmd: cmd, base: "http://" + listen, logPath: logPath, logFile: logFile, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls GET /readyz until it answers 200, the process exits or
// timeout passes.
func (p *vrskyProc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s %s", resp.Status, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("vrsky serve exited before it was ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("vrsky serve not ready after %v (last /readyz: %s)", timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exited reports whether the process has ended (and how).
func (p *vrskyProc) Exited() (bool, error) {
	select {
	case <-p.exited:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits up to grace, then kills the process.
func (p *vrskyProc) stop(grace time.Duration) error {
	defer p.logFile.Close()
	select {
	case <-p.exited:
		return fmt.Errorf("vrsky serve had already exited: %v", p.waitErr)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		var ee *exec.ExitError
		if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
			return p.waitErr
		}
		if ee != nil && ee.ExitCode() != 0 {
			return fmt.Errorf("vrsky serve exited with %v after SIGTERM", p.waitErr)
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("vrsky serve did not stop within %v of SIGTERM; killed", grace)
	}
}

// tail returns the last n lines of the server's log.
func (p *vrskyProc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// apiClient calls VRSky's REST API with one key.
type apiClient struct {
	base string
	key  string
	hc   *http.Client
}

// apiError is a non-2xx answer of the REST API.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
	Body    string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
	}
	s := fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

func (c *apiClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
		var env struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if json.Unmarshal(b, &env) == nil {
			e.Code, e.Message, e.Field = env.Error.Code, env.Error.Message, env.Error.Field
		}
		return fmt.Errorf("%s %s: %w", method, path, e)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// integrationStatus is the part of GET /api/v1/integrations/{name} the
// bench reads.
type integrationStatus struct {
	Status struct {
		State    string `json:"state"`
		Error    string `json:"error"`
		Ingested uint64 `json:"ingested"`
		Pending  uint64 `json:"pending"`
		Sinks    []struct {
			Name         string `json:"name"`
			Delivered    uint64 `json:"delivered"`
			Failures     uint64 `json:"failures"`
			DeadLettered uint64 `json:"dead_lettered"`
			Pending      uint64 `json:"pending"`
			InFlight     uint64 `json:"in_flight"`
		} `json:"sinks"`
	} `json:"status"`
}

func (s *integrationStatus) String() string {
	st := s.Status
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s ingested=%d pending=%d", st.State, st.Ingested, st.Pending)
	if st.Error != "" {
		fmt.Fprintf(&b, " error=%q", st.Error)
	}
	for _, k := range st.Sinks {
		fmt.Fprintf(&b, " sink[%s] delivered=%d failures=%d dead_lettered=%d pending=%d in_flight=%d",
			k.Name, k.Delivered, k.Failures, k.DeadLettered, k.Pending, k.InFlight)
	}
	return b.String()
}

// errUnknownConnector marks a spec that the catalogue cannot satisfy.
var errUnknownConnector = errors.New("unknown connector")

const (
	benchTenant      = "bench"
	benchIntegration = "load"
	benchHookPath    = "load"
	// The steps of -steps: the DESIGN.md example.
	jqQuery    = `{id: .order_id, total: (.amount * .qty), customer: .customer.name}`
	filterExpr = `total >= 10`
)

// integrationSpec is the bench's integration as JSON.
// With batch > 0 the sink sends JSON arrays of up to batch payloads.
func integrationSpec(sinkURL string, steps bool, batch, ingestBatch int) []byte {
	type conn struct {
		Name      string         `json:"name,omitempty"`
		Connector string         `json:"connector"`
		Config    map[string]any `json:"config"`
	}
	spec := struct {
		Name   string `json:"name"`
		Source conn   `json:"source"`
		Steps  []conn `json:"steps"`
		Sinks  []conn `json:"sinks"`
	}{
		Name:   benchIntegration,
		Source: conn{Connector: "http-webhook", Config: map[string]any{"path": benchHookPath}},
		Steps:  []conn{},
		Sinks:  []conn{{Name: "sink", Connector: "http", Config: map[string]any{"url": sinkURL}}},
	}
	if ingestBatch > 0 {
		spec.Source.Config["batch"] = map[string]any{"format": "ndjson", "max_messages": ingestBatch}
	}
	if batch > 0 {
		spec.Sinks[0].Config["batch"] = map[string]any{"max_messages": batch, "max_wait": "20ms"}
	}
	if steps {
		spec.Steps = []conn{
			{Connector: "jq", Config: map[string]any{"query": jqQuery}},
			{Connector: "filter", Config: map[string]any{"expr": filterExpr}},
		}
	}
	b, _ := json.Marshal(spec)
	return b
}

// setupIntegration creates the bench tenant and its integration, starts it,
// and returns the webhook URL and the tenant's client.
func setupIntegration(ctx context.Context, base, adminKey, sinkURL string, steps bool, batch, ingestBatch int) (string, *apiClient, error) {
	tc, err := setupSpec(ctx, base, adminKey, benchIntegration, integrationSpec(sinkURL, steps, batch, ingestBatch))
	if err != nil {
		return "", nil, err
	}
	return base + "/hooks/" + benchTenant + "/" + benchHookPath, tc, nil
}

// setupSpec creates the bench tenant, creates and starts the integration
// named name from spec, waits until it runs and returns the tenant's client.
func setupSpec(ctx context.Context, base, adminKey, name string, spec []byte) (*apiClient, error) {
	return setupTenantSpec(ctx, base, adminKey, benchTenant, name, spec)
}

// setupTenantSpec is setupSpec for the tenant named tenantName.
func setupTenantSpec(ctx context.Context, base, adminKey, tenantName, name string, spec []byte) (*apiClient, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	admin := &apiClient{base: base, key: adminKey, hc: hc}
	var tenant struct {
		Name   string `json:"name"`
		APIKey string `json:"api_key"`
	}
	body, _ := json.Marshal(map[string]string{"name": tenantName})
	if err := admin.do(ctx, http.MethodPost, "/api/v1/tenants", "application/json", body, &tenant); err != nil {
		return nil, fmt.Errorf("create tenant: %w", err)
	}
	if tenant.APIKey == "" {
		return nil, errors.New("create tenant: the answer has no api_key")
	}
	tc := &apiClient{base: base, key: tenant.APIKey, hc: hc}
	if err := tc.do(ctx, http.MethodPost, "/api/v1/integrations", "application/json", spec, nil); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest &&
			(strings.Contains(strings.ToLower(ae.Message), "unknown connector") || strings.Contains(strings.ToLower(ae.Message), "not found in the catalog") ||
				(strings.Contains(ae.Field, "connector") && strings.Contains(strings.ToLower(ae.Message), "unknown"))) {
			return nil, fmt.Errorf("create integration: %w: %w", errUnknownConnector, err)
		}
		return nil, fmt.Errorf("create integration: %w", err)
	}
	if err := tc.do(ctx, http.MethodPost, "/api/v1/integrations/"+name+"/start", "", nil, nil); err != nil {
		return nil, fmt.Errorf("start integration: %w", err)
	}
	// Wait until it runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := getStatusOf(ctx, tc, name)
		if err != nil {
			return nil, err
		}
		if st.Status.State == "running" {
			return tc, nil
		}
		if st.Status.State == "error" || time.Now().After(deadline) {
			return nil, fmt.Errorf("integration did not start: %s", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getStatus(ctx context.Context, tc *apiClient) (*integrationStatus, error) {
	return getStatusOf(ctx, tc, benchIntegration)
}

func getStatusOf(ctx context.Context, tc *apiClient, name string) (*integrationStatus, error) {
	var st integrationStatus
	if err := tc.do(ctx, http.MethodGet, "/api/v1/integrations/"+name, "", nil, &st); err != nil {
		return nil, fmt.Errorf("integration status: %w", err)
	}
	return &st, nil
}
