package deploy

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// sentinel is a secret-looking value the tests try to slip into the chart;
// it must never come out of a render.
const sentinel = "s3cr3t-SENTINEL-7f1c"

// TestValuesRefused: values.schema.json (or the templates, where a rule
// spans several values) refuses each of these, with an error that names
// the field; a refused render writes nothing, so no sentinel leaks.
func TestValuesRefused(t *testing.T) {
	tests := []struct {
		name   string
		values string
		field  string // in the error
	}{
		{"a latest image", "image: {tag: latest}", "tag"},
		{"an unknown pull policy", "image: {pullPolicy: Sometimes}", "pullPolicy"},
		{"replicas as a word", "replicaCount: two", "replicaCount"},
		{"no replica", "replicaCount: 0", "replicaCount"},
		{"an unknown log level", "config: {logLevel: verbose}", "logLevel"},
		{"an unknown egress mode", "config: {egress: anywhere}", "egress"},
		{"an unknown payload store", "config: {payloadStore: nfs}", "payloadStore"},
		{"a compile timeout that is no duration", "config: {wasmCompileTimeout: soon}", "wasmCompileTimeout"},
		{"dedicated NATS as local child processes", "dedicatedNats: {mode: local}", "mode"},
		{"a negative rate", "dedicatedNats: {aboveRate: -1}", "aboveRate"},
		{"an unknown fsync policy", "dedicatedNats: {sync: never}", "sync"},
		{"an unknown top-level key", "adminKey: " + sentinel, "adminKey"},
		{"a secret value next to its reference", "secrets: {adminKey: {value: " + sentinel + "}}", "value"},
		{"a database password in values", "database: {url: postgres://vrsky:" + sentinel + "@db/vrsky}", "url"},
		{"an S3 secret key in values", "s3: {secretAccessKey: " + sentinel + "}", "secretAccessKey"},
		{"S3 credentials in the endpoint", "s3: {endpoint: https://AKIA:" + sentinel + "@s3.example.com}", "endpoint"},
		{"a NATS password in the URL", "externalNats: {url: nats://vrsky:" + sentinel + "@nats:4222}", "url"},
		{"an http NATS URL", "externalNats: {url: http://nats:4222}", "url"},
		{"no NATS at all", "externalNats: {url: \"\"}", "url"},
		{"S3 on without an endpoint", "s3: {endpoint: \"\"}", "endpoint"},
		{"an S3 bucket name S3 refuses", "s3: {bucket: My_Bucket}", "bucket"},
		{"a secret reference without a key", "secrets: {natsKeys: {key: \"\"}}", "key"},
		{"/metrics through the Ingress", "ingress: {paths: [/api, /metrics]}", "paths"},
		{"the root path through the Ingress", "ingress: {paths: [/]}", "paths"},
		{"TLS without a Secret", "ingress: {tls: [{hosts: [a.example.com]}]}", "secretName"},
		{"an ExternalName Service", "service: {type: ExternalName}", "type"},
		{"a port out of range", "service: {port: 70000}", "port"},
		{"CPU target above 100%", "autoscaling: {targetCPUUtilizationPercentage: 150}", "targetCPUUtilizationPercentage"},
		{"a pending target that is no quantity", "autoscaling: {pendingMessages: {averageValue: lots}}", "averageValue"},
		{"a CPU request that is no quantity", "resources: {requests: {cpu: lots}}", "cpu"},
		{"a NetworkPolicy peer with an unknown field", "networkPolicy: {ingressFrom: [{namespace: ingress}]}", "namespace"},
		{"a NetworkPolicy port 0", "networkPolicy: {egress: {postgres: {ports: [0]}}}", "ports"},
		{"an ipBlock without a CIDR", "networkPolicy: {egress: {s3: {to: [{ipBlock: {except: [10.0.0.0/8]}}]}}}", "cidr"},
		{"an env var without a name", "extraEnv: [{value: x}]", "name"},
		// Rules of the templates: an empty peer list would admit everyone.
		{"PostgreSQL on and no peers for it", "networkPolicy: {egress: {postgres: {to: []}}}", "networkPolicy.egress.postgres.to"},
		{"S3 on and no peers for it", "networkPolicy: {egress: {s3: {to: []}}}", "networkPolicy.egress.s3.to"},
		{"an external NATS and no peers for it", "networkPolicy: {egress: {nats: {to: []}}}", "networkPolicy.egress.nats.to"},
		{"dedicated NATS on Kubernetes and no API server peers", "dedicatedNats: {mode: kubernetes}", "networkPolicy.egress.kubeAPI.to"},
		{"a connector rule without peers", "networkPolicy: {egress: {connectors: [{to: [], ports: [443]}]}}", "networkPolicy.egress.connectors[0].to"},
		{"no DNS peers", "networkPolicy: {egress: {dns: {to: [], ports: [53]}}}", "networkPolicy.egress.dns.to"},
		{"an Ingress without hosts", "ingress: {enabled: true}", "ingress.hosts"},
		{"no Secret named", "secrets: {existingSecret: \"\"}", "secrets.adminKey.name or secrets.existingSecret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := render(t, baseValues+"---\n"+tt.values, true)
			if err == nil {
				t.Fatalf("rendered; want an error naming %s", tt.field)
			}
			t.Log(err)
			if r != nil && strings.Contains(r.text, sentinel) {
				t.Errorf("the sentinel value came out of the render")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

// TestSecretsByReference: the values a user gives for secrets are names of
// Secrets and keys in them; the secret-looking names in a render appear
// only as references (secretKeyRef and secret volumes), and nothing else.
func TestSecretsByReference(t *testing.T) {
	r := mustRender(t, baseValues+`---
secrets:
  existingSecret: vrsky-`+sentinel+`
  databaseURL: {name: pg-`+sentinel+`, key: url}
`, false)
	checkCommon(t, r)
	// The names show up, as references; count them against the places a
	// reference may be.
	refs := strings.Count(r.text, "secretName: vrsky-"+sentinel) + strings.Count(r.text, "name: vrsky-"+sentinel) + strings.Count(r.text, "name: pg-"+sentinel)
	if n := strings.Count(r.text, sentinel); n != refs {
		t.Errorf("%s appears %d times, %d of them as a Secret reference", sentinel, n, refs)
	}
	for _, e := range get[*appsv1.Deployment](t, r, "Deployment/"+fullname).Spec.Template.Spec.Containers[0].Env {
		if e.Name == "VRSKY_DATABASE_URL" && (e.ValueFrom.SecretKeyRef.Name != "pg-"+sentinel || e.ValueFrom.SecretKeyRef.Key != "url") {
			t.Errorf("VRSKY_DATABASE_URL from %+v, want pg-%s key url", e.ValueFrom.SecretKeyRef, sentinel)
		}
		if e.Name == "VRSKY_ADMIN_KEY" && e.ValueFrom.SecretKeyRef.Name != "vrsky-"+sentinel {
			t.Errorf("VRSKY_ADMIN_KEY from %+v, want secrets.existingSecret", e.ValueFrom.SecretKeyRef)
		}
	}
}
