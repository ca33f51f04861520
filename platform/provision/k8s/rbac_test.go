// Through client-go's fake clientset, which records every call the
// provisioner makes: see helpers_test.go for why a fake.
package k8s

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"
)

// TestRulesCoverEveryCall runs every path of the provisioner (create,
// update of the config and of every object, unchanged, health, remove with and without an instance) and
// checks each API call it made against Rules, and each verb of Rules
// against the calls: the Role the Helm chart grants and the code cannot
// drift apart.
func TestRulesCoverEveryCall(t *testing.T) {
	ctx := context.Background()
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 1)
	p, cs := newTestProvisioner(t, testConfig())

	// Each step records the calls the provisioner makes, and not the
	// test's own (a claim and a pod, which controllers would make).
	var calls []k8stesting.Action
	step := func(name string, f func() error) {
		t.Helper()
		n := len(cs.Actions())
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		calls = append(calls, actionsSince(cs, n)...)
	}
	step("Ensure (create)", func() error { _, err := p.Ensure(ctx, spec); return err })
	step("Ensure (unchanged)", func() error { _, err := p.Ensure(ctx, spec); return err })
	spec.AccountJWT = op.accountJWT(t, spec.Account, 2)
	step("Ensure (new JWT)", func() error { _, err := p.Ensure(ctx, spec); return err })
	relabelled := testConfig()
	relabelled.Labels["cost-centre"] = "42"
	step("Ensure (new labels)", func() error { _, err := New(cs, relabelled).Ensure(ctx, spec); return err })
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vrsky-nats-acme-0", Namespace: testNamespace, Labels: p.labels("acme")}}
	if _, err := cs.CoreV1().Pods(testNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-vrsky-nats-acme-0", Namespace: testNamespace}}
	if _, err := cs.CoreV1().PersistentVolumeClaims(testNamespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	step("Health", func() error { _, err := p.Health(ctx); return err })
	step("Remove", func() error { return p.Remove(ctx, "acme") })
	step("Remove (gone)", func() error { return p.Remove(ctx, "acme") })

	type grant struct{ group, resource, verb string }
	granted := map[grant]bool{}
	for _, r := range Rules() {
		if len(r.ResourceNames) != 0 || len(r.NonResourceURLs) != 0 {
			t.Errorf("rule %+v: names or URLs; the provisioner needs neither", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						t.Errorf("rule %+v has a wildcard", r)
					}
					granted[grant{g, res, v}] = true
				}
			}
		}
	}
	used := map[grant]bool{}
	for _, a := range calls {
		res := a.GetResource()
		resource := res.Resource
		if a.GetSubresource() != "" {
			resource += "/" + a.GetSubresource()
		}
		g := grant{res.Group, resource, rbacVerb(a.GetVerb())}
		used[g] = true
		if !granted[g] {
			t.Errorf("call %s %q %s is not in Rules", g.verb, g.group, g.resource)
		}
		if a.GetNamespace() != testNamespace {
			t.Errorf("call %s %s in namespace %q: a Role in %q would not cover it", g.verb, g.resource, a.GetNamespace(), testNamespace)
		}
	}
	var unused []string
	for g := range granted {
		if !used[g] {
			unused = append(unused, fmt.Sprintf("%s %q %s", g.verb, g.group, g.resource))
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Errorf("Rules grant what the provisioner never does: %v", unused)
	}
}

// rbacVerb is the RBAC verb of a client-go testing action's verb.
func rbacVerb(v string) string {
	if v == "delete-collection" {
		return "deletecollection"
	}
	return v
}
