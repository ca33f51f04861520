package deploy

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "helm/vrsky"
	release   = "prod"
	namespace = "vrsky"
)

// monitoringAPI is the prometheus-operator API the ServiceMonitor and
// PrometheusRule need from the cluster.
const monitoringAPI = "monitoring.coreos.com/v1"

// rendered is one render of the chart: every object, decoded.
type rendered struct {
	// text is the whole output, for searches (sentinels).
	text string
	// objects by "Kind/name".
	objects map[string]any
}

// render renders the chart as `helm install` would, with the values in
// overlay over values.yaml (YAML documents separated by ---, each merged
// over the ones before), validated by values.schema.json; with
// monitoring the cluster serves monitoring.coreos.com/v1. It returns the
// error of loading, validation or rendering.
func render(t *testing.T, overlay string, monitoring bool) (*rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	vals := chartutil.Values{}
	for _, doc := range strings.Split(overlay, "\n---\n") {
		v, err := chartutil.ReadValues([]byte(doc))
		if err != nil {
			t.Fatalf("the test's values: %v\n%s", err, doc)
		}
		merge(vals, v)
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if monitoring {
		caps.APIVersions = append(caps.APIVersions, monitoringAPI)
	}
	opts := chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(chrt, vals, opts, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, rv)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	r := &rendered{objects: map[string]any{}}
	var all strings.Builder
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		all.WriteString(files[name])
		for _, doc := range splitDocs(files[name]) {
			obj, key, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if _, dup := r.objects[key]; dup {
				t.Fatalf("%s: %s rendered twice", name, key)
			}
			r.objects[key] = obj
		}
	}
	r.text = all.String()
	return r, nil
}

// merge sets src's values in dst, descending into maps both have.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// mustRender is render that fails the test on an error.
func mustRender(t *testing.T, overlay string, monitoring bool) *rendered {
	t.Helper()
	r, err := render(t, overlay, monitoring)
	if err != nil {
		t.Fatalf("render: %v\nvalues:\n%s", err, overlay)
	}
	return r
}

// splitDocs splits a rendered file into its YAML documents, leaving out
// those with nothing but comments and blanks.
func splitDocs(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, d)
		}
	}
	return docs
}

// newObject is a fresh typed object for an apiVersion and kind the chart
// may render; anything else is a test failure, so a new kind is decoded
// strictly too.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case monitoringAPI + "/ServiceMonitor":
		return &serviceMonitor{}, true
	case monitoringAPI + "/PrometheusRule":
		return &prometheusRule{}, true
	}
	return nil, false
}

// decodeStrict decodes one document into its Kubernetes type: a field the
// type does not have, or a field given twice, is an error.
func decodeStrict(doc []byte) (any, string, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, "", fmt.Errorf("not YAML: %w", err)
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return nil, "", fmt.Errorf("%s %s: no type to decode it into", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil || meta.Metadata.Name == "" {
		return nil, "", fmt.Errorf("%s %s: no metadata.name", tm.APIVersion, tm.Kind)
	}
	if meta.Metadata.Namespace != namespace {
		return nil, "", fmt.Errorf("%s %s: namespace %q, want the release's %q", tm.Kind, meta.Metadata.Name, meta.Metadata.Namespace, namespace)
	}
	return obj, tm.Kind + "/" + meta.Metadata.Name, nil
}

// The prometheus-operator types have no Go types in this module: these
// are the fields of theirs the chart uses, decoded strictly like the rest.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ruleFile          `json:"spec"`
}

// ruleFile is a Prometheus rule file, and a PrometheusRule's spec.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// get returns the object key ("Kind/name") as a T, failing the test when
// it is missing.
func get[T any](t *testing.T, r *rendered, key string) T {
	t.Helper()
	o, ok := r.objects[key]
	if !ok {
		t.Fatalf("no %s rendered; have %v", key, r.keys())
	}
	v, ok := o.(T)
	if !ok {
		t.Fatalf("%s is a %T", key, o)
	}
	return v
}

// all returns every object of type T.
func all[T any](r *rendered) []T {
	var out []T
	for _, k := range r.keys() {
		if v, ok := r.objects[k].(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func (r *rendered) keys() []string {
	ks := make([]string, 0, len(r.objects))
	for k := range r.objects {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (r *rendered) has(key string) bool { _, ok := r.objects[key]; return ok }
