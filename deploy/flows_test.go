package deploy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The endpoints of the flows the chart's NetworkPolicies are checked on.
// baseValues puts the external NATS in namespace messaging, PostgreSQL at
// 10.0.2.10 and S3 in 52.218.0.0/17.
var (
	ingressController = endpoint{name: "the ingress controller", ns: "ingress-nginx", nsLabels: nsLabels("ingress-nginx"),
		labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}
	prometheus = endpoint{name: "Prometheus", ns: "monitoring", nsLabels: nsLabels("monitoring"),
		labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	otherPod          = endpoint{name: "another pod of the namespace", ns: namespace, nsLabels: nsLabels(namespace), labels: map[string]string{"app": "other"}}
	otherNamespacePod = endpoint{name: "a pod of another namespace", ns: "default", nsLabels: nsLabels("default"), labels: map[string]string{"app": "other"}}
	// A pod labelled like VRSky's, in another namespace.
	otherNamespaceVRSky = endpoint{name: "a vrsky pod of another namespace", ns: "default", nsLabels: nsLabels("default"),
		labels: map[string]string{"app.kubernetes.io/name": "vrsky"}}
	kubeDNS      = endpoint{name: "kube-dns", ns: "kube-system", nsLabels: nsLabels("kube-system"), labels: map[string]string{"k8s-app": "kube-dns"}}
	externalNATS = endpoint{name: "the external NATS cluster", ns: "messaging", nsLabels: nsLabels("messaging"),
		labels: map[string]string{"app.kubernetes.io/name": "nats"}}
	postgres      = endpoint{name: "PostgreSQL", ip: "10.0.2.10"}
	s3            = endpoint{name: "S3", ip: "52.218.1.20"}
	internet      = endpoint{name: "a public HTTPS server", ip: "93.184.216.34"}
	cloudMetadata = endpoint{name: "the cloud metadata service", ip: "169.254.169.254"}
	privateHost   = endpoint{name: "a host of the private network", ip: "10.9.9.9"}
	kubeAPI       = endpoint{name: "the API server's Service address", ip: "10.96.0.1"}
	kubeAPINode   = endpoint{name: "the API server's endpoint", ip: "172.18.0.2"}
)

func nsLabels(ns string) map[string]string {
	return map[string]string{"kubernetes.io/metadata.name": ns}
}

// vrskyPod is a pod of the rendered Deployment, with its template's labels.
func vrskyPod(r *rendered) endpoint {
	var l map[string]string
	if d, ok := r.objects["Deployment/"+fullname].(*appsv1.Deployment); ok {
		l = d.Spec.Template.Labels
	}
	return endpoint{name: "a vrsky pod", ns: namespace, nsLabels: nsLabels(namespace), labels: l}
}

// flow is a connection and whether the policies must admit it.
type flow struct {
	from, to endpoint
	proto    corev1.Protocol // TCP when empty
	port     int32
	want     bool
}

// checkFlows evaluates each flow against the rendered NetworkPolicies.
func checkFlows(t *testing.T, r *rendered, flows []flow) {
	t.Helper()
	policies := all[*networkingv1.NetworkPolicy](r)
	if len(policies) == 0 {
		t.Fatal("no NetworkPolicy rendered")
	}
	for _, f := range flows {
		proto := f.proto
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if got := admits(t, policies, f.from, f.to, proto, f.port); got != f.want {
			verb := "refused"
			if got {
				verb = "admitted"
			}
			t.Errorf("%s -> %s on %s %d: %s, want the opposite", f.from.name, f.to.name, proto, f.port, verb)
		}
	}
}
