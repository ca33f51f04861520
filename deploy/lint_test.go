package deploy

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestHelmLint runs `helm lint`'s checks (Chart.yaml, values, templates,
// the schema, deprecated APIs) on the chart with baseValues; a warning
// fails like an error, except the one for the NATS chart, which is not in
// charts/ here (helm dependency update fetches it; this machine cannot).
func TestHelmLint(t *testing.T) {
	vals, err := chartutil.ReadValues([]byte(baseValues))
	if err != nil {
		t.Fatal(err)
	}
	l := lint.All(chartDir, vals, namespace, false)
	for _, m := range l.Messages {
		if m.Severity == support.WarningSev && strings.Contains(m.Err.Error(), "missing these dependencies: nats") {
			continue
		}
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		} else {
			t.Logf("helm lint: %s", m)
		}
	}
}
