package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, USER, …
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions: comments and
// blank lines dropped, lines ending in a backslash joined with the next
// (comment lines inside a continuation are skipped, as BuildKit does).
// Heredocs are not supported; the test fails on one.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.Contains(line, "<<") && regexp.MustCompile(`<<-?["']?[A-Z]+`).MatchString(line) {
			t.Fatalf("%s:%d: a heredoc, which this parser does not read", path, n)
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: ends inside a continued line", path)
	}
	return out
}

// TestDockerfile: base images pinned by tag, a final stage that runs as a
// non-root numeric user with a HEALTHCHECK the binary answers, the
// builder's Go the one go.mod asks for, settings that are flags.
func TestDockerfile(t *testing.T) {
	const path = "docker/Dockerfile"
	ins := parseDockerfile(t, path)
	stages := map[string]bool{}
	type stage struct {
		image string
		ins   []instruction
	}
	var all []*stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			var image string
			for _, f := range fields {
				if !strings.HasPrefix(f, "--") {
					image = f
					break
				}
			}
			all = append(all, &stage{image: image})
			// FROM of an earlier stage's name needs no tag.
			if !stages[image] {
				checkPinned(t, path, in.line, image)
			}
			if len(fields) >= 3 && strings.EqualFold(fields[len(fields)-2], "AS") {
				stages[fields[len(fields)-1]] = true
			}
			continue
		}
		if len(all) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
			}
			continue
		}
		all[len(all)-1].ins = append(all[len(all)-1].ins, in)
	}
	if len(all) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(all))
	}

	// The builder's Go is go.mod's.
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil || !strings.HasPrefix(all[0].image, "golang:"+string(goVersion[1])+"-") {
		t.Errorf("the builder is %s; want golang:%s-…, the Go of go.mod", all[0].image, goVersion[1])
	}
	var build string
	for _, in := range all[0].ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/vrsky") || !strings.Contains(build, "wasm-connectors/build.sh") {
		t.Errorf("the build step %q: want the shipped Wasm connectors, then a static (CGO_ENABLED=0) ./cmd/vrsky", build)
	}

	final := all[len(all)-1]
	var user, entrypoint, healthcheck string
	var env, volumes, labels []string
	for _, in := range final.ins {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "HEALTHCHECK":
			healthcheck = in.args
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				if k, _, ok := strings.Cut(kv, "="); ok {
					env = append(env, k)
				}
			}
		case "VOLUME":
			volumes = append(volumes, in.args)
		case "LABEL":
			labels = append(labels, in.args)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final USER %q: want a numeric, non-zero uid (Kubernetes' runAsNonRoot checks a number)", user)
	}
	if !strings.Contains(strings.Join(volumes, " "), `"/data"`) {
		t.Errorf("VOLUME %v: want /data, so the root filesystem can be read-only", volumes)
	}
	if !strings.Contains(strings.Join(labels, " "), "org.opencontainers.image.version") {
		t.Error("no org.opencontainers.image.* labels")
	}
	checkServeEnv(t, path, env)

	// The HEALTHCHECK runs the binary's own probe, in exec form.
	_, cmdJSON, ok := strings.Cut(healthcheck, "CMD ")
	var argv []string
	if !ok || json.Unmarshal([]byte(strings.TrimSpace(cmdJSON)), &argv) != nil || len(argv) < 2 {
		t.Fatalf("HEALTHCHECK %q: want CMD in exec form", healthcheck)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 || ep[0] != argv[0] {
		t.Errorf("ENTRYPOINT %s and HEALTHCHECK %v run different binaries", entrypoint, argv)
	}
	if argv[1] != "healthcheck" {
		t.Fatalf("HEALTHCHECK runs %v, want vrsky healthcheck", argv)
	}
	help := runVrsky(t, append(argv[1:], "--help")...)
	for i, a := range argv[2:] {
		if strings.HasPrefix(a, "--") && !strings.Contains(help, a+" ") {
			t.Errorf("HEALTHCHECK argument %d, %s, is no flag of vrsky healthcheck", i, a)
		}
	}
}

// checkPinned fails for an image without a tag or digest, or tagged latest.
func checkPinned(t *testing.T, where string, line int, image string) {
	t.Helper()
	if strings.Contains(image, "@sha256:") {
		return
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	if !ok || tag == "" || tag == "latest" || strings.Contains(tag, "$") {
		t.Errorf("%s:%d: image %q is not pinned by a tag (and never latest)", where, line, image)
	}
}

// TestOneUser: the image's USER is the uid the chart's pods and the
// Compose nodes run as, so the data volume the image prepares is theirs.
func TestOneUser(t *testing.T) {
	var user string
	for _, in := range parseDockerfile(t, "docker/Dockerfile") {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	r := mustRender(t, baseValues, false)
	ps := get[*appsv1.Deployment](t, r, "Deployment/"+fullname).Spec.Template.Spec.SecurityContext
	chart := strconv.FormatInt(*ps.RunAsUser, 10) + ":" + strconv.FormatInt(*ps.RunAsGroup, 10)
	if chart != user {
		t.Errorf("the chart runs as %s, the image as %s", chart, user)
	}
	f := readCompose(t)
	for _, name := range sortedKeys(f.Services) {
		if s := f.Services[name]; strings.HasPrefix(s.Image, "vrsky:") && s.User != user {
			t.Errorf("compose service %s runs as %q, the image as %s", name, s.User, user)
		}
	}
}
