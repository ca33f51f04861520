package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"sigs.k8s.io/yaml"
)

// composeFile is the part of the Compose specification compose.yaml uses,
// decoded strictly: a misspelt key fails the test instead of being
// ignored by the test and by Compose alike.
type composeFile struct {
	Name     string                    `json:"name"`
	XVRSky   map[string]any            `json:"x-vrsky"`
	XNATS    map[string]any            `json:"x-nats"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string                                `json:"image"`
	Build       *struct{ Context, Dockerfile string } `json:"build"`
	User        string                                `json:"user"`
	ReadOnly    bool                                  `json:"read_only"`
	Tmpfs       []string                              `json:"tmpfs"`
	Restart     string                                `json:"restart"`
	Entrypoint  []string                              `json:"entrypoint"`
	Command     []string                              `json:"command"`
	Environment map[string]string                     `json:"environment"`
	Ports       []string                              `json:"ports"`
	Volumes     []string                              `json:"volumes"`
	Profiles    []string                              `json:"profiles"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test        []string `json:"test"`
		Interval    string   `json:"interval"`
		Timeout     string   `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod string   `json:"start_period"`
		Disable     bool     `json:"disable"`
	} `json:"healthcheck"`
	// XRoot says why a service runs as root (the image needs it).
	XRoot string `json:"x-root"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// TestCompose: images pinned, healthchecks, no root without a reason, two
// vrsky nodes on a 3-node NATS cluster with PostgreSQL and MinIO.
func TestCompose(t *testing.T) {
	f := readCompose(t)
	var vrsky, nats []string
	for _, name := range sortedKeys(f.Services) {
		s := f.Services[name]
		oneShot := len(s.Profiles) > 0
		checkPinned(t, "compose.yaml service "+name, 0, s.Image)
		if s.Healthcheck == nil || (!oneShot && (s.Healthcheck.Disable || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD")) {
			t.Errorf("service %s: no healthcheck in exec form (CMD …)", name)
		}
		if s.User == "" {
			if s.XRoot == "" {
				t.Errorf("service %s runs as the image's user (root for most) and gives no x-root reason", name)
			}
		} else if uid, _, _ := strings.Cut(s.User, ":"); uid == "0" || uid == "root" {
			t.Errorf("service %s runs as root (%s)", name, s.User)
		} else if _, err := strconv.Atoi(uid); err != nil {
			t.Errorf("service %s: user %q, want a numeric uid", name, s.User)
		}
		for dep := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is no service", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := f.Volumes[src]; !ok {
					t.Errorf("service %s mounts volume %s, which volumes: does not declare", name, src)
				}
			}
		}
		switch {
		case strings.HasPrefix(s.Image, "vrsky:") && len(s.Command) > 0 && s.Command[0] == "serve":
			vrsky = append(vrsky, name)
		case strings.HasPrefix(s.Image, "nats:"):
			nats = append(nats, name)
		}
	}
	if len(vrsky) != 2 {
		t.Errorf("vrsky serve services %v, want 2", vrsky)
	}
	if len(nats) != 3 {
		t.Errorf("NATS servers %v, want 3", nats)
	}
	for _, want := range []string{"postgres", "minio", "prometheus", "grafana"} {
		if _, ok := f.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}

	// The vrsky nodes: a volume each, read-only roots, every setting a
	// flag, the whole NATS cluster in --nats-url.
	dataVolumes := map[string]string{}
	for _, name := range vrsky {
		s := f.Services[name]
		if !s.ReadOnly || !slices.Contains(s.Tmpfs, "/tmp") {
			t.Errorf("service %s: want read_only with a tmpfs /tmp", name)
		}
		var flags []string
		for _, a := range s.Command[1:] {
			k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			flags = append(flags, "VRSKY_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_")))
			if k == "nats-url" {
				for _, n := range nats {
					if !strings.Contains(v, "nats://"+n+":4222") {
						t.Errorf("service %s: --nats-url %s leaves out %s", name, v, n)
					}
				}
			}
		}
		checkServeEnv(t, "compose.yaml service "+name+" command", flags)
		checkServeEnv(t, "compose.yaml service "+name+" environment", sortedKeys(s.Environment))
		for _, v := range s.Volumes {
			if src, dst, _ := strings.Cut(v, ":"); dst == "/data" {
				if other, dup := dataVolumes[src]; dup {
					t.Errorf("services %s and %s share the data volume %s", other, name, src)
				}
				dataVolumes[src] = name
			}
		}
	}
	if len(dataVolumes) != len(vrsky) {
		t.Errorf("data volumes %v: want one at /data per vrsky service", dataVolumes)
	}
	names := map[string]bool{}
	for _, n := range nats {
		names[f.Services[n].Environment["SERVER_NAME"]] = true
	}
	if len(names) != len(nats) || names[""] {
		t.Errorf("NATS servers' SERVER_NAMEs %v: want one each, all different", names)
	}
}

// TestComposeNATSConfig parses compose/nats/nats.conf with nats-server's
// own parser, including the operator block the binary prints (what
// setup.sh writes), as each of the three servers reads it.
func TestComposeNATSConfig(t *testing.T) {
	f := readCompose(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "nats-operator.json")
	runVrsky(t, "nats", "keys", keys)
	// The parser makes the resolver's directory: keep it in the temp dir.
	block := runVrsky(t, "nats", "server-config", "--keys", keys, "--resolver-dir", filepath.Join(dir, "accounts"))
	if err := os.WriteFile(filepath.Join(dir, "vrsky-operator.conf"), []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^operator: "([^"]+)"`).FindStringSubmatch(block)
	if m == nil {
		t.Fatalf("no operator JWT in vrsky nats server-config's output:\n%s", block)
	}
	op, err := jwt.DecodeOperatorClaims(m[1])
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("compose/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(strings.ReplaceAll(string(conf), "/data/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, name := range sortedKeys(f.Services) {
		if strings.HasPrefix(f.Services[name].Image, "nats:") {
			servers = append(servers, name)
		}
	}
	for _, name := range servers {
		t.Run(name, func(t *testing.T) {
			s := f.Services[name]
			if !slices.Contains(s.Volumes, "./nats/nats.conf:/etc/nats/nats.conf:ro") || !slices.Contains(s.Volumes, "./nats/vrsky-operator.conf:/etc/nats/vrsky-operator.conf:ro") {
				t.Errorf("volumes %v: want nats.conf and vrsky-operator.conf side by side in /etc/nats", s.Volumes)
			}
			t.Setenv("SERVER_NAME", s.Environment["SERVER_NAME"])
			opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
			if err != nil {
				t.Fatalf("nats-server refuses nats.conf: %v", err)
			}
			if opts.ServerName != name {
				t.Errorf("server_name %q, want %q", opts.ServerName, name)
			}
			if !opts.JetStream {
				t.Error("JetStream is off")
			}
			var routes []string
			for _, u := range opts.Routes {
				routes = append(routes, u.Host)
			}
			sort.Strings(routes)
			var want []string
			for _, n := range servers {
				want = append(want, n+":6222")
			}
			if !slices.Equal(routes, want) || opts.Cluster.Port != 6222 {
				t.Errorf("routes %v on port %d, want %v on 6222", routes, opts.Cluster.Port, want)
			}
			if len(opts.TrustedOperators) != 1 {
				t.Fatalf("%d trusted operators, want VRSky's", len(opts.TrustedOperators))
			}
			if got := opts.TrustedOperators[0].Subject; got != op.Subject {
				t.Errorf("trusted operator %s, want VRSky's %s", got, op.Subject)
			}
			if _, ok := opts.AccountResolver.(*server.DirAccResolver); !ok {
				t.Errorf("account resolver %T, want the full (directory) resolver VRSky pushes claims to", opts.AccountResolver)
			}
		})
	}
}

// TestComposePrometheus: Prometheus scrapes every vrsky node and loads
// the rules file compose.yaml mounts.
func TestComposePrometheus(t *testing.T) {
	f := readCompose(t)
	b, err := os.ReadFile("compose/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Global        map[string]string `json:"global"`
		RuleFiles     []string          `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var targets []string
	for _, sc := range p.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	for _, name := range sortedKeys(f.Services) {
		s := f.Services[name]
		if len(s.Command) > 0 && s.Command[0] == "serve" && !slices.Contains(targets, name+":8080") {
			t.Errorf("Prometheus does not scrape %s:8080 (targets %v)", name, targets)
		}
	}
	mounted := false
	for _, v := range f.Services["prometheus"].Volumes {
		if src, rest, _ := strings.Cut(v, ":"); src == "../prometheus/vrsky.rules.yml" && len(p.RuleFiles) == 1 && strings.HasPrefix(rest, p.RuleFiles[0]) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("rule_files %v: want ../prometheus/vrsky.rules.yml, mounted there", p.RuleFiles)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
