package deploy

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/vrsky/vrsky/platform/provision/k8s"
)

// The objects' name for release "prod".
const fullname = "prod-vrsky"

// baseValues is the least a real install gives: an external NATS cluster,
// an S3 endpoint, and where the NetworkPolicies let the pods connect.
const baseValues = `
externalNats:
  url: nats://nats-0.nats.messaging:4222,nats://nats-1.nats.messaging:4222
s3:
  endpoint: https://s3.eu-west-1.amazonaws.com
networkPolicy:
  egress:
    nats:
      to:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: messaging}}
          podSelector: {matchLabels: {app.kubernetes.io/name: nats}}
      ports: [4222]
    postgres:
      to: [{ipBlock: {cidr: 10.0.2.10/32}}]
      ports: [5432]
    s3:
      to: [{ipBlock: {cidr: 52.218.0.0/17}}]
      ports: [443]
`

// The secret-env names: each must come from a Secret, never a value.
var secretEnv = []string{"VRSKY_ADMIN_KEY", "VRSKY_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

// chartCase is one set of values and what its render must hold besides
// what every render must (checkCommon).
type chartCase struct {
	name       string
	values     string
	monitoring bool
	check      func(t *testing.T, r *rendered)
}

func TestChartRenders(t *testing.T) {
	tests := []chartCase{
		{name: "defaults", values: baseValues, check: checkDefaults},
		{name: "ingress with TLS", values: baseValues + "---" + `
ingress:
  enabled: true
  className: nginx
  hosts: [vrsky.example.com]
  tls: [{secretName: vrsky-tls, hosts: [vrsky.example.com]}]
`, check: checkIngress},
		{name: "autoscaling on CPU and pending messages", values: baseValues + "---" + `
autoscaling:
  enabled: true
  minReplicas: 3
  maxReplicas: 12
  pendingMessages: {enabled: true, averageValue: "5000"}
`, check: checkHPA},
		{name: "external NATS only: control plane and objects in NATS", values: baseValues + "---" + `
database: {enabled: false}
s3: {enabled: false}
`, check: checkNATSOnly},
		{name: "NATS chart as a dependency", values: baseValues + "---" + `
nats: {enabled: true}
externalNats: {url: ""}
`, check: checkNATSChart},
		{name: "dedicated NATS on Kubernetes", values: baseValues + "---" + `
dedicatedNats: {mode: kubernetes, aboveRate: 5000}
networkPolicy:
  egress:
    kubeAPI:
      to: [{ipBlock: {cidr: 10.96.0.1/32}}, {ipBlock: {cidr: 172.18.0.2/32}}]
      ports: [443, 6443]
`, check: checkDedicated},
		{name: "metrics on, cluster serves the monitoring API", values: baseValues + "---" + `
metrics:
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus}}
  prometheusRule: {enabled: true}
`, monitoring: true, check: checkMonitoring},
		{name: "metrics on, cluster without the monitoring API", values: baseValues + "---" + `
metrics:
  serviceMonitor: {enabled: true}
  prometheusRule: {enabled: true}
`, check: func(t *testing.T, r *rendered) {
			if r.has("ServiceMonitor/"+fullname) || r.has("PrometheusRule/"+fullname) {
				t.Error("ServiceMonitor or PrometheusRule rendered for a cluster that has no monitoring.coreos.com/v1")
			}
		}},
		{name: "metrics off", values: baseValues, monitoring: true, check: func(t *testing.T, r *rendered) {
			if r.has("ServiceMonitor/"+fullname) || r.has("PrometheusRule/"+fullname) {
				t.Error("ServiceMonitor or PrometheusRule rendered with metrics off")
			}
		}},
		{name: "network policies off, PDB by minAvailable", values: baseValues + "---" + `
networkPolicy: {enabled: false}
podDisruptionBudget: {minAvailable: 1}
`, check: func(t *testing.T, r *rendered) {
			if n := len(all[*networkingv1.NetworkPolicy](r)); n != 0 {
				t.Errorf("%d NetworkPolicies with networkPolicy.enabled false", n)
			}
			pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget/"+fullname)
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
				t.Errorf("PDB minAvailable %v maxUnavailable %v, want 1 and unset", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, tt.values, tt.monitoring)
			checkCommon(t, r)
			tt.check(t, r)
		})
	}
}

// checkCommon is what every render holds: no Secret, the pods' probes and
// security contexts, secrets by reference only, settings that are flags
// of vrsky serve, selectors that select the pods.
func checkCommon(t *testing.T, r *rendered) {
	t.Helper()
	if s := all[*corev1.Secret](r); len(s) > 0 {
		t.Errorf("the chart rendered a Secret (%s): secrets come from existing Secrets only", s[0].Name)
	}
	d := get[*appsv1.Deployment](t, r, "Deployment/"+fullname)
	pod := d.Spec.Template
	if pod.Labels["app.kubernetes.io/name"] != "vrsky" {
		t.Errorf("pod label app.kubernetes.io/name %q, want vrsky: the tenant instances' NetworkPolicies admit pods by it", pod.Labels["app.kubernetes.io/name"])
	}
	if !selects(t, d.Spec.Selector, pod.Labels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector, pod.Labels)
	}

	ps := pod.Spec.SecurityContext
	if ps == nil || !isTrue(ps.RunAsNonRoot) || ps.RunAsUser == nil || *ps.RunAsUser == 0 ||
		ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser, seccomp RuntimeDefault", ps)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !isTrue(sc.RunAsNonRoot) || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext %+v: want non-root, read-only root, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault", sc)
	}
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("image %q: want a pinned tag", c.Image)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %v: want CPU and memory requests and a memory limit", c.Resources)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v: want GET %s on port http", p.name, p.probe, p.path)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("container ports %v, want http 8080", c.Ports)
	}
	// A read-only root filesystem: everything vrsky writes is on a volume.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	for _, p := range []string{"/data", "/tmp"} {
		if _, ok := mounts[p]; !ok {
			t.Errorf("no volume at %s: vrsky writes there and the root filesystem is read-only", p)
		}
	}
	if m, ok := mounts["/etc/vrsky/nats"]; !ok || !m.ReadOnly {
		t.Errorf("the NATS operator keys are not mounted read-only at /etc/vrsky/nats (%+v)", m)
	}

	// Secrets: by reference, never a value.
	env := map[string]corev1.EnvVar{}
	var names []string
	for _, e := range c.Env {
		env[e.Name] = e
		names = append(names, e.Name)
	}
	for _, name := range secretEnv {
		e, ok := env[name]
		if !ok {
			continue
		}
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == "" {
			t.Errorf("%s: %+v, want a secretKeyRef and no value", name, e)
		}
	}
	if _, ok := env["VRSKY_ADMIN_KEY"]; !ok {
		t.Error("no VRSKY_ADMIN_KEY: every node must share one admin key")
	}
	if e := env["POD_NAMESPACE"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE %+v, want the pod's namespace", e)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == "nats-keys" && (v.Secret == nil || v.Secret.SecretName == "") {
			t.Errorf("the nats-keys volume %+v is not an existing Secret", v)
		}
	}

	// The settings: every VRSKY_ variable is a flag of vrsky serve.
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap/"+fullname)
	if len(c.EnvFrom) == 0 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("envFrom %+v does not read the ConfigMap %s", c.EnvFrom, cm.Name)
	}
	for k := range cm.Data {
		names = append(names, k)
		if slices.Contains(secretEnv, k) {
			t.Errorf("the ConfigMap holds %s, a secret", k)
		}
	}
	checkServeEnv(t, "the chart", names)
	for k, want := range map[string]string{"VRSKY_DATA": "/data", "VRSKY_LISTEN": "0.0.0.0:8080", "VRSKY_NATS_KEYS": "/etc/vrsky/nats/nats-operator.json"} {
		if cm.Data[k] != want {
			t.Errorf("ConfigMap %s = %q, want %q", k, cm.Data[k], want)
		}
	}
	if cm.Data["VRSKY_NATS_URL"] == "" {
		t.Error("no VRSKY_NATS_URL: the pods would start embedded servers of their own")
	}

	svc := get[*corev1.Service](t, r, "Service/"+fullname)
	if !selectsMap(svc.Spec.Selector, pod.Labels) || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service selector %v ports %v: want the pods, port http", svc.Spec.Selector, svc.Spec.Ports)
	}
	if r.has("PodDisruptionBudget/" + fullname) {
		pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget/"+fullname)
		if !selects(t, pdb.Spec.Selector, pod.Labels) {
			t.Errorf("PDB selector %v does not select the pods", pdb.Spec.Selector)
		}
	}
	if r.has("Ingress/" + fullname) {
		for _, rule := range get[*networkingv1.Ingress](t, r, "Ingress/"+fullname).Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if p.Backend.Service == nil || p.Backend.Service.Name != svc.Name || p.Backend.Service.Port.Name != "http" {
					t.Errorf("Ingress path %s goes to %+v, want Service %s port http", p.Path, p.Backend, svc.Name)
				}
			}
		}
	}
	for _, np := range all[*networkingv1.NetworkPolicy](r) {
		for i, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				t.Errorf("NetworkPolicy %s: ingress rule %d has no peers, which admits every source", np.Name, i)
			}
		}
		for i, rule := range np.Spec.Egress {
			if len(rule.To) == 0 {
				t.Errorf("NetworkPolicy %s: egress rule %d has no peers, which admits every destination", np.Name, i)
			}
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// selectsMap: every key of sel has its value in l.
func selectsMap(sel, l map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if l[k] != v {
			return false
		}
	}
	return true
}

func checkDefaults(t *testing.T, r *rendered) {
	d := get[*appsv1.Deployment](t, r, "Deployment/"+fullname)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if isTrue(d.Spec.Template.Spec.AutomountServiceAccountToken) {
		t.Error("the pods mount a service account token without dedicatedNats.mode kubernetes")
	}
	for _, k := range []string{"Ingress/" + fullname, "HorizontalPodAutoscaler/" + fullname, "Role/" + fullname + "-tenant-nats"} {
		if r.has(k) {
			t.Errorf("%s rendered by default", k)
		}
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget/"+fullname)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap/"+fullname)
	if cm.Data["VRSKY_DEDICATED_NATS"] != "off" || cm.Data["VRSKY_PAYLOAD_STORE"] != "objects" || cm.Data["VRSKY_S3_ENDPOINT"] == "" {
		t.Errorf("ConfigMap %v: want dedicated NATS off, payloads in objects, an S3 endpoint", cm.Data)
	}
	envs := map[string]bool{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		envs[e.Name] = true
	}
	for _, name := range secretEnv {
		if !envs[name] {
			t.Errorf("no %s with PostgreSQL and S3 on", name)
		}
	}

	// Default deny, and what VRSky's pods may do.
	deny := get[*networkingv1.NetworkPolicy](t, r, "NetworkPolicy/"+fullname+"-default-deny")
	if len(deny.Spec.PodSelector.MatchLabels)+len(deny.Spec.PodSelector.MatchExpressions) != 0 ||
		!hasType(deny, networkingv1.PolicyTypeIngress) || !hasType(deny, networkingv1.PolicyTypeEgress) || len(deny.Spec.Ingress)+len(deny.Spec.Egress) != 0 {
		t.Errorf("default-deny policy %+v: want every pod, both directions, no rule", deny.Spec)
	}
	checkFlows(t, r, []flow{
		{from: ingressController, to: vrskyPod(r), port: 8080, want: true},
		{from: prometheus, to: vrskyPod(r), port: 8080, want: true},
		{from: ingressController, to: vrskyPod(r), port: 9090, want: false},
		{from: otherPod, to: vrskyPod(r), port: 8080, want: false},
		{from: otherNamespacePod, to: vrskyPod(r), port: 8080, want: false},
		{from: vrskyPod(r), to: kubeDNS, proto: corev1.ProtocolUDP, port: 53, want: true},
		{from: vrskyPod(r), to: kubeDNS, port: 53, want: true},
		{from: vrskyPod(r), to: externalNATS, port: 4222, want: true},
		{from: vrskyPod(r), to: externalNATS, port: 8222, want: false},
		{from: vrskyPod(r), to: postgres, port: 5432, want: true},
		{from: vrskyPod(r), to: postgres, port: 22, want: false},
		{from: vrskyPod(r), to: s3, port: 443, want: true},
		{from: vrskyPod(r), to: internet, port: 443, want: true},
		{from: vrskyPod(r), to: internet, port: 80, want: false},
		{from: vrskyPod(r), to: cloudMetadata, port: 80, want: false},
		{from: vrskyPod(r), to: cloudMetadata, port: 443, want: false},
		{from: vrskyPod(r), to: privateHost, port: 443, want: false},
		{from: vrskyPod(r), to: otherPod, port: 8080, want: false},
		{from: otherPod, to: internet, port: 443, want: false},
		{from: otherPod, to: kubeDNS, proto: corev1.ProtocolUDP, port: 53, want: false},
	})
}

func checkIngress(t *testing.T, r *rendered) {
	ing := get[*networkingv1.Ingress](t, r, "Ingress/"+fullname)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName %v, want nginx", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "vrsky-tls" || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"vrsky.example.com"}) {
		t.Errorf("TLS %+v, want vrsky-tls for vrsky.example.com", ing.Spec.TLS)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "vrsky.example.com" {
		t.Fatalf("rules %+v, want one for vrsky.example.com", ing.Spec.Rules)
	}
	var paths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		if p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
			t.Errorf("path %s: type %v, want Prefix", p.Path, p.PathType)
		}
		paths = append(paths, p.Path)
	}
	if !slices.Equal(paths, []string{"/api", "/hooks", "/ui"}) {
		t.Errorf("paths %v, want /api, /hooks, /ui (and never /metrics)", paths)
	}
	if strings.Contains(strings.Join(paths, " "), "/metrics") || slices.Contains(paths, "/") {
		t.Errorf("paths %v route /metrics", paths)
	}
}

func checkHPA(t *testing.T, r *rendered) {
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler/"+fullname)
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != fullname {
		t.Errorf("scale target %+v, want Deployment %s", hpa.Spec.ScaleTargetRef, fullname)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 3 || hpa.Spec.MaxReplicas != 12 {
		t.Errorf("replicas %v..%d, want 3..12", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if len(hpa.Spec.Metrics) != 2 {
		t.Fatalf("%d metrics, want CPU and pending messages", len(hpa.Spec.Metrics))
	}
	cpu, ext := hpa.Spec.Metrics[0], hpa.Spec.Metrics[1]
	if cpu.Resource == nil || cpu.Resource.Name != corev1.ResourceCPU || cpu.Resource.Target.AverageUtilization == nil || *cpu.Resource.Target.AverageUtilization != 70 {
		t.Errorf("first metric %+v, want CPU at 70%%", cpu)
	}
	if ext.External == nil || ext.External.Metric.Name != "vrsky_messages_pending" || ext.External.Target.AverageValue == nil || ext.External.Target.AverageValue.Value() != 5000 {
		t.Errorf("second metric %+v, want vrsky_messages_pending averaging 5000 per pod", ext)
	}
	if d := get[*appsv1.Deployment](t, r, "Deployment/"+fullname); d.Spec.Replicas != nil {
		t.Errorf("the Deployment sets replicas %d under an HPA: every upgrade would reset the HPA's count", *d.Spec.Replicas)
	}
}

func checkNATSOnly(t *testing.T, r *rendered) {
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap/"+fullname)
	if _, ok := cm.Data["VRSKY_S3_ENDPOINT"]; ok {
		t.Errorf("VRSKY_S3_ENDPOINT set with s3.enabled false")
	}
	for _, e := range get[*appsv1.Deployment](t, r, "Deployment/"+fullname).Spec.Template.Spec.Containers[0].Env {
		if e.Name == "VRSKY_DATABASE_URL" || strings.HasPrefix(e.Name, "AWS_") {
			t.Errorf("%s set with PostgreSQL and S3 off", e.Name)
		}
	}
	checkFlows(t, r, []flow{
		{from: vrskyPod(r), to: externalNATS, port: 4222, want: true},
		{from: vrskyPod(r), to: postgres, port: 5432, want: false},
	})
}

func checkNATSChart(t *testing.T, r *rendered) {
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap/"+fullname)
	if cm.Data["VRSKY_NATS_URL"] != "nats://prod-nats:4222" {
		t.Errorf("VRSKY_NATS_URL %q, want the NATS chart's Service nats://prod-nats:4222", cm.Data["VRSKY_NATS_URL"])
	}
	natsPod := endpoint{name: "the NATS chart's server", ns: namespace, nsLabels: nsLabels(namespace),
		labels: map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": release, "app.kubernetes.io/component": "nats"}}
	natsPeer := natsPod
	natsPeer.name = "another NATS server of the chart"
	// The chart's nats-box shares name and instance; it is no NATS server.
	natsBox := natsPod
	natsBox.name = "the NATS chart's nats-box"
	natsBox.labels = map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": release, "app.kubernetes.io/component": "nats-box"}
	checkFlows(t, r, []flow{
		{from: vrskyPod(r), to: natsPod, port: 4222, want: true},
		{from: natsPeer, to: natsPod, port: 6222, want: true},
		{from: natsPod, to: kubeDNS, proto: corev1.ProtocolUDP, port: 53, want: true},
		{from: otherPod, to: natsPod, port: 4222, want: false},
		{from: natsBox, to: natsPod, port: 6222, want: false},
		{from: vrskyPod(r), to: natsPod, port: 6222, want: false},
		{from: prometheus, to: natsPod, port: 8222, want: true},
		{from: natsPod, to: internet, port: 443, want: false},
		{from: vrskyPod(r), to: externalNATS, port: 4222, want: false},
	})
}

func checkDedicated(t *testing.T, r *rendered) {
	d := get[*appsv1.Deployment](t, r, "Deployment/"+fullname)
	sa := get[*corev1.ServiceAccount](t, r, "ServiceAccount/"+fullname)
	if d.Spec.Template.Spec.ServiceAccountName != sa.Name || !isTrue(d.Spec.Template.Spec.AutomountServiceAccountToken) {
		t.Errorf("pods run as %q (token mounted: %v), want %s with its token", d.Spec.Template.Spec.ServiceAccountName, d.Spec.Template.Spec.AutomountServiceAccountToken, sa.Name)
	}
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap/"+fullname)
	if cm.Data["VRSKY_DEDICATED_NATS"] != "kubernetes" || cm.Data["VRSKY_DEDICATED_NATS_NAMESPACE"] != namespace || cm.Data["VRSKY_DEDICATED_ABOVE_RATE"] != "5000" {
		t.Errorf("ConfigMap %v: want dedicated NATS on Kubernetes in %s, above 5000 msgs/s", cm.Data, namespace)
	}

	// The Role is exactly what the provisioner calls.
	role := get[*rbacv1.Role](t, r, "Role/"+fullname+"-tenant-nats")
	if !reflect.DeepEqual(role.Rules, k8s.Rules()) {
		t.Errorf("Role rules\n%+v\nwant k8s.Rules()\n%+v", role.Rules, k8s.Rules())
	}
	rb := get[*rbacv1.RoleBinding](t, r, "RoleBinding/"+fullname+"-tenant-nats")
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name ||
		len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa.Name || rb.Subjects[0].Namespace != namespace {
		t.Errorf("RoleBinding %+v, want Role %s for ServiceAccount %s/%s", rb, role.Name, namespace, sa.Name)
	}
	if len(all[*rbacv1.Role](r)) != 1 {
		t.Errorf("%d Roles, want 1", len(all[*rbacv1.Role](r)))
	}

	// A tenant's instance, labelled as the provisioner labels it, takes
	// connections from VRSky's pods only, and makes none.
	tenant := endpoint{name: "tenant acme's NATS", ns: namespace, nsLabels: nsLabels(namespace), labels: map[string]string{
		k8s.LabelName: "nats", k8s.LabelInstance: "vrsky-nats-acme",
		k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelComponent: k8s.Component, k8s.LabelTenant: "acme",
	}}
	other := tenant
	other.name = "tenant globex's NATS"
	other.labels = map[string]string{k8s.LabelName: "nats", k8s.LabelInstance: "vrsky-nats-globex",
		k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelComponent: k8s.Component, k8s.LabelTenant: "globex"}
	checkFlows(t, r, []flow{
		{from: vrskyPod(r), to: tenant, port: k8s.ClientPort, want: true},
		{from: vrskyPod(r), to: tenant, port: k8s.MonitorPort, want: true},
		{from: otherPod, to: tenant, port: k8s.ClientPort, want: false},
		{from: other, to: tenant, port: k8s.ClientPort, want: false},
		{from: ingressController, to: tenant, port: k8s.ClientPort, want: false},
		{from: otherNamespaceVRSky, to: tenant, port: k8s.ClientPort, want: false},
		{from: tenant, to: internet, port: 443, want: false},
		{from: tenant, to: vrskyPod(r), port: 8080, want: false},
		{from: vrskyPod(r), to: kubeAPI, port: 443, want: true},
		{from: vrskyPod(r), to: kubeAPINode, port: 6443, want: true},
	})
}

func checkMonitoring(t *testing.T, r *rendered) {
	sm := get[*serviceMonitor](t, r, "ServiceMonitor/"+fullname)
	svc := get[*corev1.Service](t, r, "Service/"+fullname)
	if !selects(t, &sm.Spec.Selector, svc.Labels) || !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor selects %v in %v; the Service has labels %v in %s", sm.Spec.Selector, sm.Spec.NamespaceSelector.MatchNames, svc.Labels, namespace)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port %s path /metrics", sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
	}
	if sm.Metadata.Labels["release"] != "kube-prometheus" {
		t.Errorf("ServiceMonitor labels %v lack metrics.serviceMonitor.labels", sm.Metadata.Labels)
	}
	pr := get[*prometheusRule](t, r, "PrometheusRule/"+fullname)
	want := readRuleFile(t, "prometheus/vrsky.rules.yml")
	if !reflect.DeepEqual(pr.Spec, want) {
		t.Errorf("PrometheusRule spec\n%+v\nwant deploy/prometheus/vrsky.rules.yml\n%+v", pr.Spec, want)
	}
	if len(pr.Spec.Groups) == 0 || len(pr.Spec.Groups[0].Rules) == 0 {
		t.Error("PrometheusRule has no rules")
	}
}

// readRuleFile decodes a Prometheus rule file strictly.
func readRuleFile(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// TestRulesCopy: Helm reads no file outside the chart, so the chart keeps
// a copy of deploy/prometheus/vrsky.rules.yml; the two must not drift.
func TestRulesCopy(t *testing.T) {
	orig, err := os.ReadFile("prometheus/vrsky.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile("helm/vrsky/files/vrsky.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if string(orig) != string(cp) {
		t.Error("helm/vrsky/files/vrsky.rules.yml differs from prometheus/vrsky.rules.yml: cp deploy/prometheus/vrsky.rules.yml deploy/helm/vrsky/files/")
	}
}

// TestChartDependency: NATS comes from the official chart, switched by
// nats.enabled.
func TestChartDependency(t *testing.T) {
	b, err := os.ReadFile("helm/vrsky/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		APIVersion   string `json:"apiVersion"`
		Name         string `json:"name"`
		Version      string `json:"version"`
		AppVersion   string `json:"appVersion"`
		Dependencies []struct {
			Name, Version, Repository, Condition string
		} `json:"dependencies"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.APIVersion != "v2" || c.Name != "vrsky" || c.Version != "0.1.0" || c.AppVersion == "" {
		t.Errorf("Chart.yaml %+v: want apiVersion v2, vrsky 0.1.0 with an appVersion", c)
	}
	if len(c.Dependencies) != 1 {
		t.Fatalf("dependencies %+v, want the NATS chart", c.Dependencies)
	}
	d := c.Dependencies[0]
	if d.Name != "nats" || d.Repository != "https://nats-io.github.io/k8s/helm/charts/" || d.Condition != "nats.enabled" || d.Version == "" {
		t.Errorf("dependency %+v, want nats from https://nats-io.github.io/k8s/helm/charts/ with condition nats.enabled and a version", d)
	}
}
