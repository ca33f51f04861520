// Through client-go's fake clientset: see helpers_test.go for why.
package k8s

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vrsky/vrsky/platform/provision"
)

// created are the objects Ensure wrote for one tenant, read back typed.
type created struct {
	configMap     *corev1.ConfigMap
	headless      *corev1.Service
	client        *corev1.Service
	statefulSet   *appsv1.StatefulSet
	networkPolicy *networkingv1.NetworkPolicy
}

func readBack(t *testing.T, cs *fake.Clientset, tenant string) created {
	t.Helper()
	ctx := context.Background()
	var c created
	var err error
	if c.configMap, err = cs.CoreV1().ConfigMaps(testNamespace).Get(ctx, "vrsky-nats-"+tenant+"-config", getOpts); err != nil {
		t.Fatal(err)
	}
	if c.headless, err = cs.CoreV1().Services(testNamespace).Get(ctx, "vrsky-nats-"+tenant+"-headless", getOpts); err != nil {
		t.Fatal(err)
	}
	if c.client, err = cs.CoreV1().Services(testNamespace).Get(ctx, "vrsky-nats-"+tenant, getOpts); err != nil {
		t.Fatal(err)
	}
	if c.statefulSet, err = cs.AppsV1().StatefulSets(testNamespace).Get(ctx, "vrsky-nats-"+tenant, getOpts); err != nil {
		t.Fatal(err)
	}
	if c.networkPolicy, err = cs.NetworkingV1().NetworkPolicies(testNamespace).Get(ctx, "vrsky-nats-"+tenant, getOpts); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c created) all() []metav1.Object {
	return []metav1.Object{c.configMap, c.headless, c.client, c.statefulSet, c.networkPolicy}
}

func TestEnsureCreates(t *testing.T) {
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 10)
	p, cs := newTestProvisioner(t, testConfig())

	inst, err := p.Ensure(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := provision.Instance{Tenant: "acme", URL: "nats://vrsky-nats-acme.tenants.svc:4222"}
	if inst != want {
		t.Fatalf("Ensure = %+v, want %+v", inst, want)
	}
	c := readBack(t, cs, "acme")

	wantLabels := map[string]string{
		"app.kubernetes.io/name":       "nats",
		"app.kubernetes.io/instance":   "vrsky-nats-acme",
		"app.kubernetes.io/managed-by": "vrsky",
		"app.kubernetes.io/component":  "tenant-nats",
		"vrsky.io/tenant":              "acme",
		"team":                         "platform",
	}
	for _, o := range c.all() {
		if !maps.Equal(o.GetLabels(), wantLabels) {
			t.Errorf("%s: labels %v, want %v", o.GetName(), o.GetLabels(), wantLabels)
		}
		if o.GetNamespace() != testNamespace {
			t.Errorf("%s: namespace %q", o.GetName(), o.GetNamespace())
		}
	}

	t.Run("StatefulSet", func(t *testing.T) {
		sts := c.statefulSet
		if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
			t.Errorf("replicas %v, want 1", sts.Spec.Replicas)
		}
		sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		podLabels := labels.Set(sts.Spec.Template.Labels)
		if sel.Empty() || !sel.Matches(podLabels) {
			t.Errorf("selector %v does not match the pod template's labels %v", sel, podLabels)
		}
		if !maps.Equal(sts.Spec.Template.Labels, wantLabels) {
			t.Errorf("pod labels %v, want %v", sts.Spec.Template.Labels, wantLabels)
		}
		if sts.Spec.ServiceName != c.headless.Name {
			t.Errorf("serviceName %q, want the headless Service %q", sts.Spec.ServiceName, c.headless.Name)
		}
		sum := sha256.Sum256([]byte(c.configMap.Data["nats.conf"]))
		if got := sts.Spec.Template.Annotations[AnnotationConfigHash]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("config hash annotation %q, want the ConfigMap's sha256 %x", got, sum)
		}
		if r := sts.Spec.PersistentVolumeClaimRetentionPolicy; r == nil || r.WhenDeleted != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			t.Errorf("PVC retention policy %+v, want WhenDeleted: Delete", r)
		}

		pod := sts.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(pod.Containers))
		}
		ctr := pod.Containers[0]
		if ctr.Image != DefaultImage {
			t.Errorf("image %q, want %q", ctr.Image, DefaultImage)
		}
		if got := strings.Join(append(ctr.Command, ctr.Args...), " "); got != "nats-server --config /etc/nats-config/nats.conf" {
			t.Errorf("command %q", got)
		}
		ports := map[string]int32{}
		for _, p := range ctr.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if !maps.Equal(ports, map[string]int32{"client": 4222, "monitor": 8222}) {
			t.Errorf("container ports %v", ports)
		}
		for name, pr := range map[string]*corev1.Probe{"liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe, "startup": ctr.StartupProbe} {
			if pr == nil || pr.HTTPGet == nil {
				t.Errorf("%s probe: %+v, want an HTTP GET", name, pr)
				continue
			}
			if pr.HTTPGet.Path != "/healthz?js-enabled-only=true" || pr.HTTPGet.Port.String() != "monitor" {
				t.Errorf("%s probe: GET %s on port %s, want /healthz?js-enabled-only=true on monitor", name, pr.HTTPGet.Path, pr.HTTPGet.Port.String())
			}
		}

		psc, sc := pod.SecurityContext, ctr.SecurityContext
		if psc == nil || sc == nil {
			t.Fatalf("security contexts: pod %v, container %v", psc, sc)
		}
		checks := []struct {
			what string
			ok   bool
		}{
			{"pod runAsNonRoot", isTrue(psc.RunAsNonRoot)},
			{"pod runAsUser non-zero", psc.RunAsUser != nil && *psc.RunAsUser != 0},
			{"pod fsGroup set", psc.FSGroup != nil},
			{"pod seccomp RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
			{"container runAsNonRoot", isTrue(sc.RunAsNonRoot)},
			{"container readOnlyRootFilesystem", isTrue(sc.ReadOnlyRootFilesystem)},
			{"container allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
			{"container not privileged", sc.Privileged == nil || !*sc.Privileged},
			{"container drops ALL capabilities", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0},
			{"container seccomp RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
			{"no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("security: want %s", c.what)
			}
		}

		mem := ctr.Resources.Limits[corev1.ResourceMemory]
		if mem.Cmp(resource.MustParse("1Gi")) != 0 {
			t.Errorf("memory limit %s, want the default 1Gi", mem.String())
		}
		if !slices.Contains(ctr.Env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: fmt.Sprint(int64(1<<30) / 10 * 9)}) {
			t.Errorf("env %v, want GOMEMLIMIT at 90%% of the limit", ctr.Env)
		}

		mounts := map[string]string{}
		for _, m := range ctr.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		if !maps.Equal(mounts, map[string]string{"config": "/etc/nats-config", "data": "/data"}) {
			t.Errorf("mounts %v", mounts)
		}
		if len(pod.Volumes) != 1 || pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != c.configMap.Name {
			t.Errorf("volumes %+v, want the ConfigMap %s", pod.Volumes, c.configMap.Name)
		}

		if len(sts.Spec.VolumeClaimTemplates) != 1 {
			t.Fatalf("%d volume claim templates, want 1", len(sts.Spec.VolumeClaimTemplates))
		}
		vct := sts.Spec.VolumeClaimTemplates[0]
		size := vct.Spec.Resources.Requests[corev1.ResourceStorage]
		if vct.Name != "data" || size.Cmp(resource.MustParse("10Gi")) != 0 ||
			!slices.Equal(vct.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) || vct.Spec.StorageClassName != nil {
			t.Errorf("volume claim template %s: %s %v class %v, want data: 10Gi ReadWriteOnce, the default class", vct.Name, size.String(), vct.Spec.AccessModes, vct.Spec.StorageClassName)
		}
	})

	t.Run("Services", func(t *testing.T) {
		podLabels := labels.Set(c.statefulSet.Spec.Template.Labels)
		for _, svc := range []*corev1.Service{c.headless, c.client} {
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
				t.Errorf("%s: selector %v does not pick the pod", svc.Name, svc.Spec.Selector)
			}
		}
		if c.headless.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("headless Service's clusterIP %q, want None", c.headless.Spec.ClusterIP)
		}
		if c.client.Name != "vrsky-nats-acme" || len(c.client.Spec.Ports) != 1 ||
			c.client.Spec.Ports[0].Port != 4222 || c.client.Spec.Ports[0].TargetPort.String() != "client" {
			t.Errorf("client Service %s ports %+v, want 4222 to the pod's client port", c.client.Name, c.client.Spec.Ports)
		}
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		np := c.networkPolicy.Spec
		podSel, err := metav1.LabelSelectorAsSelector(&np.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if podSel.Empty() || !podSel.Matches(labels.Set(c.statefulSet.Spec.Template.Labels)) {
			t.Errorf("policy's podSelector %v does not pick the pod", podSel)
		}
		if !slices.Equal(np.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			t.Errorf("policy types %v", np.PolicyTypes)
		}
		if len(np.Ingress) != 1 {
			t.Fatalf("%d ingress rules, want 1", len(np.Ingress))
		}
		rule := np.Ingress[0]
		if len(rule.From) != 1 || rule.From[0].PodSelector == nil || rule.From[0].NamespaceSelector != nil || rule.From[0].IPBlock != nil ||
			!maps.Equal(rule.From[0].PodSelector.MatchLabels, map[string]string{"app.kubernetes.io/name": "vrsky"}) {
			t.Errorf("peers %+v, want only the pods matching VRSkySelector", rule.From)
		}
		var ports []string
		for _, p := range rule.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String()))
		}
		if !slices.Equal(ports, []string{"TCP/4222", "TCP/8222"}) {
			t.Errorf("ports %v, want TCP/4222 TCP/8222", ports)
		}
	})

	t.Run("ConfigMap", func(t *testing.T) {
		conf := c.configMap.Data["nats.conf"]
		for _, s := range []string{spec.OperatorJWT, spec.SystemAccountJWT, spec.AccountJWT} {
			if !strings.Contains(conf, s) {
				t.Errorf("config lacks %.20s…", s)
			}
		}
		checkConfig(t, conf, spec, false)
	})
}

func isTrue(b *bool) bool { return b != nil && *b }

func TestConfigOptions(t *testing.T) {
	op := newTestOperator(t)
	tests := []struct {
		name  string
		cfg   func(*Config)
		check func(t *testing.T, c created)
	}{{
		name: "storage class, size and image",
		cfg: func(c *Config) {
			c.StorageClass, c.StorageSize, c.Image = "fast-ssd", resource.MustParse("20Gi"), "registry.example/nats:pinned"
		},
		check: func(t *testing.T, c created) {
			vct := c.statefulSet.Spec.VolumeClaimTemplates[0]
			size := vct.Spec.Resources.Requests[corev1.ResourceStorage]
			if vct.Spec.StorageClassName == nil || *vct.Spec.StorageClassName != "fast-ssd" || size.String() != "20Gi" {
				t.Errorf("claim: class %v size %s", vct.Spec.StorageClassName, size.String())
			}
			if img := c.statefulSet.Spec.Template.Spec.Containers[0].Image; img != "registry.example/nats:pinned" {
				t.Errorf("image %q", img)
			}
		},
	}, {
		name: "resources without a memory limit",
		cfg: func(c *Config) {
			c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
		},
		check: func(t *testing.T, c created) {
			ctr := c.statefulSet.Spec.Template.Spec.Containers[0]
			if cpu := ctr.Resources.Requests[corev1.ResourceCPU]; cpu.String() != "2" || len(ctr.Resources.Limits) != 0 {
				t.Errorf("resources %+v, want the configured ones only", ctr.Resources)
			}
			if len(ctr.Env) != 0 {
				t.Errorf("env %v, want no GOMEMLIMIT without a limit", ctr.Env)
			}
		},
	}, {
		name: "vrsky in another namespace",
		cfg: func(c *Config) {
			c.VRSkyNamespaceSelector = map[string]string{"kubernetes.io/metadata.name": "vrsky"}
		},
		check: func(t *testing.T, c created) {
			peer := c.networkPolicy.Spec.Ingress[0].From[0]
			if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "vrsky" || peer.PodSelector == nil {
				t.Errorf("peer %+v, want vrsky's pods in the vrsky namespace", peer)
			}
		},
	}, {
		name: "provisioner labels win over Config.Labels",
		cfg: func(c *Config) {
			c.Labels = map[string]string{"app.kubernetes.io/managed-by": "helm", "vrsky.io/tenant": "other", "extra": "x"}
		},
		check: func(t *testing.T, c created) {
			for _, o := range c.all() {
				l := o.GetLabels()
				if l["app.kubernetes.io/managed-by"] != "vrsky" || l["vrsky.io/tenant"] != "acme" || l["extra"] != "x" {
					t.Errorf("%s: labels %v", o.GetName(), l)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.cfg(&cfg)
			p, cs := newTestProvisioner(t, cfg)
			if _, err := p.Ensure(context.Background(), op.spec(t, "acme", 1)); err != nil {
				t.Fatal(err)
			}
			tt.check(t, readBack(t, cs, "acme"))
		})
	}
}

func TestEnsureTwiceWritesNothing(t *testing.T) {
	ctx := context.Background()
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 10)
	p, cs := newTestProvisioner(t, testConfig())
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	before := readBack(t, cs, "acme")
	n := len(cs.Actions())
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if w := writes(actionsSince(cs, n)); len(w) != 0 {
		t.Errorf("second Ensure of an unchanged spec wrote: %v", describe(w))
	}
	after := readBack(t, cs, "acme")
	for i, o := range after.all() {
		if o.GetResourceVersion() != before.all()[i].GetResourceVersion() {
			t.Errorf("%s changed: resourceVersion %s → %s", o.GetName(), before.all()[i].GetResourceVersion(), o.GetResourceVersion())
		}
	}
	counts := map[string]int{}
	cms, _ := cs.CoreV1().ConfigMaps(testNamespace).List(ctx, metav1.ListOptions{})
	svcs, _ := cs.CoreV1().Services(testNamespace).List(ctx, metav1.ListOptions{})
	stss, _ := cs.AppsV1().StatefulSets(testNamespace).List(ctx, metav1.ListOptions{})
	nps, _ := cs.NetworkingV1().NetworkPolicies(testNamespace).List(ctx, metav1.ListOptions{})
	counts["configmaps"], counts["services"], counts["statefulsets"], counts["networkpolicies"] = len(cms.Items), len(svcs.Items), len(stss.Items), len(nps.Items)
	if want := map[string]int{"configmaps": 1, "services": 2, "statefulsets": 1, "networkpolicies": 1}; !maps.Equal(counts, want) {
		t.Errorf("objects %v, want %v", counts, want)
	}
}

func TestEnsureNewJWTsRollThePod(t *testing.T) {
	ctx := context.Background()
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 10)
	p, cs := newTestProvisioner(t, testConfig())
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Someone else's annotation on the ConfigMap, and the clusterIP the API
	// server would have given the client Service: updates keep both.
	cm, _ := cs.CoreV1().ConfigMaps(testNamespace).Get(ctx, "vrsky-nats-acme-config", getOpts)
	cm.Annotations["example.com/owner"] = "ops"
	if _, err := cs.CoreV1().ConfigMaps(testNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := readBack(t, cs, "acme")

	spec.AccountJWT = op.accountJWT(t, spec.Account, 20) // new limits, new claims
	n := len(cs.Actions())
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	after := readBack(t, cs, "acme")

	var updated []string
	for _, a := range writes(actionsSince(cs, n)) {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok {
			t.Errorf("unexpected write %s", describe([]k8stesting.Action{a}))
			continue
		}
		obj := u.GetObject().(metav1.Object)
		updated = append(updated, a.GetResource().Resource+"/"+obj.GetName())
		// The update was made from the stored object: its resourceVersion.
		var was metav1.Object
		for _, o := range before.all() {
			if o.GetName() == obj.GetName() && fmt.Sprintf("%T", o) == fmt.Sprintf("%T", u.GetObject()) {
				was = o
			}
		}
		if was == nil || obj.GetResourceVersion() != was.GetResourceVersion() {
			t.Errorf("update of %s not made from the stored object (resourceVersion %q)", obj.GetName(), obj.GetResourceVersion())
		}
	}
	slices.Sort(updated)
	if want := []string{"configmaps/vrsky-nats-acme-config", "statefulsets/vrsky-nats-acme"}; !slices.Equal(updated, want) {
		t.Errorf("updated %v, want %v", updated, want)
	}
	conf := after.configMap.Data["nats.conf"]
	if !strings.Contains(conf, spec.AccountJWT) {
		t.Error("the ConfigMap does not hold the new account JWT")
	}
	checkConfig(t, conf, spec, false)
	if after.configMap.Annotations["example.com/owner"] != "ops" {
		t.Errorf("the update dropped another writer's annotation: %v", after.configMap.Annotations)
	}
	h0 := before.statefulSet.Spec.Template.Annotations[AnnotationConfigHash]
	h1 := after.statefulSet.Spec.Template.Annotations[AnnotationConfigHash]
	sum := sha256.Sum256([]byte(conf))
	if h0 == h1 || h1 != hex.EncodeToString(sum[:]) {
		t.Errorf("pod template's config hash %s → %s, want the new config's %x", h0, h1, sum)
	}
}

func TestEnsureUpdateKeepsAssignedFields(t *testing.T) {
	ctx := context.Background()
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 10)
	_, cs := newTestProvisioner(t, testConfig())
	if _, err := New(cs, testConfig()).Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// What the API server assigns on create.
	svc, _ := cs.CoreV1().Services(testNamespace).Get(ctx, "vrsky-nats-acme", getOpts)
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.0.42", []string{"10.96.0.42"}
	if _, err := cs.CoreV1().Services(testNamespace).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A new label changes every object.
	cfg := testConfig()
	cfg.Labels["cost-centre"] = "42"
	cfg.StorageSize = resource.MustParse("50Gi") // immutable on a StatefulSet: kept
	if _, err := New(cs, cfg).Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	c := readBack(t, cs, "acme")
	for _, o := range c.all() {
		if o.GetLabels()["cost-centre"] != "42" {
			t.Errorf("%s: labels %v, want the new one", o.GetName(), o.GetLabels())
		}
	}
	if c.client.Spec.ClusterIP != "10.96.0.42" || !slices.Equal(c.client.Spec.ClusterIPs, []string{"10.96.0.42"}) {
		t.Errorf("client Service's clusterIP %q %v, want the assigned one kept", c.client.Spec.ClusterIP, c.client.Spec.ClusterIPs)
	}
	if size := c.statefulSet.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; size.String() != "10Gi" {
		t.Errorf("volume claim template changed to %s; it is immutable", size.String())
	}
	if c.statefulSet.Spec.Template.Labels["cost-centre"] != "42" {
		t.Errorf("pod template labels %v, want the new one", c.statefulSet.Spec.Template.Labels)
	}
}

func TestEnsureRetriesAConflict(t *testing.T) {
	ctx := context.Background()
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 10)
	p, cs := newTestProvisioner(t, testConfig())
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	cs.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "vrsky-nats-acme-config", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	spec.AccountJWT = op.accountJWT(t, spec.Account, 20)
	if _, err := p.Ensure(ctx, spec); err != nil {
		t.Fatalf("Ensure after a conflict: %v", err)
	}
	if conflicts != 1 {
		t.Fatalf("%d conflicts returned, want 1", conflicts)
	}
	if c := readBack(t, cs, "acme"); !strings.Contains(c.configMap.Data["nats.conf"], spec.AccountJWT) {
		t.Error("the ConfigMap was not updated after the conflict")
	}
}

func TestEnsureLeavesForeignObjectsAlone(t *testing.T) {
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vrsky-nats-acme-config", Namespace: testNamespace, Labels: map[string]string{"app": "mine"}},
		Data:       map[string]string{"x": "y"},
	}
	p, cs := newTestProvisioner(t, testConfig(), foreign)
	_, err := p.Ensure(context.Background(), newTestOperator(t).spec(t, "acme", 1))
	if err == nil || !strings.Contains(err.Error(), "not managed by vrsky") {
		t.Fatalf("Ensure over a foreign ConfigMap: %v, want a refusal", err)
	}
	got, _ := cs.CoreV1().ConfigMaps(testNamespace).Get(context.Background(), foreign.Name, getOpts)
	if !maps.Equal(got.Data, foreign.Data) {
		t.Errorf("foreign ConfigMap overwritten: %v", got.Data)
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	op := newTestOperator(t)
	p, cs := newTestProvisioner(t, testConfig())
	for _, tenant := range []string{"acme", "other"} {
		if _, err := p.Ensure(ctx, op.spec(t, tenant, 1)); err != nil {
			t.Fatal(err)
		}
		// The claim the StatefulSet controller would have made for pod 0.
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
			Name: "data-vrsky-nats-" + tenant + "-0", Namespace: testNamespace, Labels: p.labels(tenant),
		}}
		if _, err := cs.CoreV1().PersistentVolumeClaims(testNamespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	if err := p.Remove(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if left := objectNames(t, cs); !slices.Equal(left, []string{
		"configmaps/vrsky-nats-other-config",
		"networkpolicies/vrsky-nats-other",
		"persistentvolumeclaims/data-vrsky-nats-other-0",
		"services/vrsky-nats-other",
		"services/vrsky-nats-other-headless",
		"statefulsets/vrsky-nats-other",
	}) {
		t.Errorf("left after Remove(acme): %v, want only other's objects", left)
	}

	for _, tenant := range []string{"acme", "never-existed"} {
		if err := p.Remove(ctx, tenant); err != nil {
			t.Errorf("Remove(%s) without an instance: %v, want nil", tenant, err)
		}
	}
	if err := p.Remove(ctx, "Not_A_Label"); fieldOf(err) != "Spec.Tenant" {
		t.Errorf("Remove of an invalid name: %v, want a Spec.Tenant error", err)
	}
}

// objectNames lists every object of the kinds the provisioner writes in
// the test namespace, as resource/name, sorted.
func objectNames(t *testing.T, cs *fake.Clientset) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	add := func(resource string, items []metav1.Object) {
		for _, o := range items {
			out = append(out, resource+"/"+o.GetName())
		}
	}
	cms, err := cs.CoreV1().ConfigMaps(testNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add("configmaps", metas(cms.Items))
	svcs, _ := cs.CoreV1().Services(testNamespace).List(ctx, metav1.ListOptions{})
	add("services", metas(svcs.Items))
	stss, _ := cs.AppsV1().StatefulSets(testNamespace).List(ctx, metav1.ListOptions{})
	add("statefulsets", metas(stss.Items))
	nps, _ := cs.NetworkingV1().NetworkPolicies(testNamespace).List(ctx, metav1.ListOptions{})
	add("networkpolicies", metas(nps.Items))
	pvcs, _ := cs.CoreV1().PersistentVolumeClaims(testNamespace).List(ctx, metav1.ListOptions{})
	add("persistentvolumeclaims", metas(pvcs.Items))
	slices.Sort(out)
	return out
}

func metas[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

func describe(as []k8stesting.Action) []string {
	var out []string
	for _, a := range as {
		s := a.GetVerb() + " " + a.GetResource().Resource
		switch a := a.(type) {
		case interface{ GetName() string }:
			s += "/" + a.GetName()
		case interface{ GetObject() runtime.Object }:
			if o, ok := a.GetObject().(metav1.Object); ok {
				s += "/" + o.GetName()
			}
		}
		out = append(out, s)
	}
	return out
}

func TestValidation(t *testing.T) {
	op := newTestOperator(t)
	other := newTestOperator(t) // signs JWTs the first does not trust
	good := op.spec(t, "acme", 1)
	otherAcc := op.spec(t, "acme", 1)
	tests := []struct {
		name  string
		edit  func(*provision.Spec)
		field string
	}{
		{"empty tenant", func(s *provision.Spec) { s.Tenant = "" }, "Spec.Tenant"},
		{"upper case tenant", func(s *provision.Spec) { s.Tenant = "Acme" }, "Spec.Tenant"},
		{"underscore", func(s *provision.Spec) { s.Tenant = "a_b" }, "Spec.Tenant"},
		{"leading dash", func(s *provision.Spec) { s.Tenant = "-acme" }, "Spec.Tenant"},
		{"dot", func(s *provision.Spec) { s.Tenant = "a.b" }, "Spec.Tenant"},
		{"too long for a StatefulSet", func(s *provision.Spec) { s.Tenant = strings.Repeat("a", MaxTenantLen+1) }, "Spec.Tenant"},
		{"empty operator JWT", func(s *provision.Spec) { s.OperatorJWT = "" }, "Spec.OperatorJWT"},
		{"operator JWT is an account's", func(s *provision.Spec) { s.OperatorJWT = s.AccountJWT }, "Spec.OperatorJWT"},
		{"empty system account", func(s *provision.Spec) { s.SystemAccount = "" }, "Spec.SystemAccount"},
		{"system account not a key", func(s *provision.Spec) { s.SystemAccount = "SYS" }, "Spec.SystemAccount"},
		{"empty system account JWT", func(s *provision.Spec) { s.SystemAccountJWT = "" }, "Spec.SystemAccountJWT"},
		{"system account JWT is the operator's", func(s *provision.Spec) { s.SystemAccountJWT = s.OperatorJWT }, "Spec.SystemAccountJWT"},
		{"empty account", func(s *provision.Spec) { s.Account = "" }, "Spec.Account"},
		{"empty account JWT", func(s *provision.Spec) { s.AccountJWT = "" }, "Spec.AccountJWT"},
		{"account JWT of another account", func(s *provision.Spec) { s.AccountJWT = otherAcc.AccountJWT }, "Spec.AccountJWT"},
		{"account JWT signed by another operator", func(s *provision.Spec) { s.AccountJWT = other.accountJWT(t, s.Account, 1) }, "Spec.AccountJWT"},
		{"account is the system account", func(s *provision.Spec) { s.Account, s.AccountJWT = s.SystemAccount, s.SystemAccountJWT }, "Spec.Account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := good
			tt.edit(&spec)
			p, cs := newTestProvisioner(t, testConfig())
			_, err := p.Ensure(context.Background(), spec)
			if got := fieldOf(err); got != tt.field {
				t.Fatalf("Ensure: %v (field %q), want an error naming %s", err, got, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			if len(cs.Actions()) != 0 {
				t.Errorf("a refused spec still called the API: %v", describe(cs.Actions()))
			}
		})
	}
	t.Run("max length accepted", func(t *testing.T) {
		spec := good
		spec.Tenant = strings.Repeat("a", MaxTenantLen)
		p, cs := newTestProvisioner(t, testConfig())
		if _, err := p.Ensure(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		sts := readBack(t, cs, spec.Tenant).statefulSet
		// The controller-revision-hash label is <name>-<10 characters>.
		if n := len(sts.Name) + 1 + 10; n > 63 {
			t.Errorf("controller-revision-hash would be %d characters", n)
		}
		if n := len(headlessName(spec.Tenant)); n > 63 {
			t.Errorf("headless Service name is %d characters", n)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	spec := newTestOperator(t).spec(t, "acme", 1)
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no VRSkySelector", func(c *Config) { c.VRSkySelector = nil }, "Config.VRSkySelector"},
		{"bad namespace", func(c *Config) { c.Namespace = "Tenants!" }, "Config.Namespace"},
		{"bad label key", func(c *Config) { c.Labels = map[string]string{"a b": "c"} }, "Config.Labels"},
		{"bad label value", func(c *Config) { c.Labels = map[string]string{"a": "not ok!"} }, "Config.Labels"},
		{"bad selector value", func(c *Config) { c.VRSkySelector = map[string]string{"a": "-"} }, "Config.VRSkySelector"},
		{"negative storage", func(c *Config) { c.StorageSize = resource.MustParse("-1Gi") }, "Config.StorageSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			if got := fieldOf(cfg.Validate()); got != tt.field {
				t.Fatalf("Validate: %v, want an error naming %s", cfg.Validate(), tt.field)
			}
			p, cs := newTestProvisioner(t, cfg)
			_, errEnsure := p.Ensure(context.Background(), spec)
			_, errHealth := p.Health(context.Background())
			errRemove := p.Remove(context.Background(), "acme")
			for name, err := range map[string]error{"Ensure": errEnsure, "Health": errHealth, "Remove": errRemove} {
				if fieldOf(err) != tt.field {
					t.Errorf("%s: %v, want the Config error", name, err)
				}
			}
			if len(cs.Actions()) != 0 {
				t.Errorf("an invalid Config still called the API: %v", describe(cs.Actions()))
			}
		})
	}
	if err := testConfig().Validate(); err != nil {
		t.Errorf("testConfig: %v", err)
	}
}
