package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// root is the repository, seen from this package's directory.
const root = "../.."

// pages lists the user-facing Markdown files: the README, everything under
// docs/ and examples/, and the top-level and per-folder guides. RATIONALE.md
// files are for the team and are not checked.
func pages(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"README.md", "CHANGELOG.md", "CONTRIBUTING.md", "abi/ABI.md", "wasm-connectors/README.md"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			out = append(out, f)
		}
	}
	for _, dir := range []string{"docs", "examples", "deploy"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return fs.SkipDir
				}
				return err
			}
			if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "charts") {
				return fs.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, ".md") {
				rel, _ := filepath.Rel(root, p)
				out = append(out, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 3 {
		t.Fatalf("found only %v: the page list no longer matches the repository", out)
	}
	return out
}

var (
	// [text](target) and [text]: target, outside code spans and blocks
	// (stripCode removes those first).
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	fence      = regexp.MustCompile("(?ms)^\\s*(```|~~~).*?^\\s*(```|~~~)\\s*$")
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	// A link in a heading keeps only its text in the slug.
	headingLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

func stripCode(s string) string {
	return codeSpan.ReplaceAllString(fence.ReplaceAllString(s, ""), "")
}

// slug is GitHub's heading anchor: lower case, punctuation other than - and
// _ dropped, spaces to hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns every anchor a Markdown file defines: its headings'
// slugs (numbered -1, -2 when repeated, as GitHub does) and explicit
// <a id="..."> tags.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range strings.Split(fence.ReplaceAllString(text, ""), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimLeft(line, "#")
		if !strings.HasPrefix(h, " ") {
			continue
		}
		// Links and code in headings keep only their text.
		h = headingLink.ReplaceAllString(h, "$1")
		s := slug(h)
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// TestRelativeLinksResolve: every relative link in a user-facing page
// names a file or folder that exists in the repository, inside it, and
// every #anchor into a Markdown file names one of its headings.
func TestRelativeLinksResolve(t *testing.T) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range pages(t) {
		raw, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		text := stripCode(string(raw))
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, m := range refLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			dest := filepath.Join(root, page)
			if file != "" {
				dest = filepath.Join(filepath.Dir(filepath.Join(root, page)), file)
			}
			absDest, err := filepath.Abs(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(absDest+string(filepath.Separator), absRoot+string(filepath.Separator)) {
				t.Errorf("%s: link %q leaves the repository", page, target)
				continue
			}
			st, err := os.Stat(dest)
			if err != nil {
				t.Errorf("%s: link %q: no such file in the repository", page, target)
				continue
			}
			if frag == "" || st.IsDir() || !strings.HasSuffix(dest, ".md") {
				continue
			}
			destText, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !anchors(string(destText))[frag] {
				t.Errorf("%s: link %q: %s has no heading or anchor %q", page, target, file, frag)
			}
		}
	}
}

// TestNoTeamDocsReferenced: user-facing pages do not send readers to the
// team's design notes, which are not part of the repository a user has.
func TestNoTeamDocsReferenced(t *testing.T) {
	for _, page := range pages(t) {
		raw, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "DESIGN.md") || strings.Contains(line, "STYLE.md") || strings.Contains(line, "../shared") {
				t.Errorf("%s:%d refers to the team's notes outside the repository: %s", page, i+1, strings.TrimSpace(line))
			}
		}
	}
}

func TestSlugAndAnchors(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Getting started (10 minutes)", "getting-started-10-minutes"},
		{"`vrsky serve` settings", "vrsky-serve-settings"},
		{"Tenancy: an account per tenant", "tenancy-an-account-per-tenant"},
		{"Dead letters & replay", "dead-letters--replay"},
	}
	for _, tt := range tests {
		if got := slug(tt.heading); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
	a := anchors("# A\n## A\n```\n# not a heading\n```\n<a id=\"x-1\"></a>\n")
	for _, want := range []string{"a", "a-1", "x-1"} {
		if !a[want] {
			t.Errorf("anchors lacks %q: %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a line in a code block counted as a heading")
	}
}
