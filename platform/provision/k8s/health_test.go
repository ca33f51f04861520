// Through client-go's fake clientset: see helpers_test.go for why. The
// StatefulSet controller and the kubelet are absent, so the tests write
// the statuses they would.
package k8s

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vrsky/vrsky/platform/provision"
)

func TestHealth(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	tests := []struct {
		tenant   string
		ready    int32                         // the StatefulSet's readyReplicas
		pod      *corev1.PodStatus             // nil: no pod
		want     provision.Health              // Tenant and URL filled in below
		wantErrs []string                      // substrings of Err
		edit     func(sts *appsv1.StatefulSet) // before the status is set
	}{{
		tenant: "ready",
		ready:  1,
		pod: &corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "nats", Ready: true, RestartCount: 2, State: running},
		}},
		want: provision.Health{Ready: true, Restarts: 2},
	}, {
		tenant: "crashing",
		pod: &corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "nats", RestartCount: 7,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container=nats",
			}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}},
		}}},
		want:     provision.Health{Restarts: 7},
		wantErrs: []string{"container nats", "CrashLoopBackOff", "back-off 5m0s", "Error, exit code 1"},
	}, {
		tenant: "no-image",
		pod: &corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "nats", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}},
		}}},
		wantErrs: []string{"ImagePullBackOff"},
	}, {
		tenant: "unschedulable",
		pod: &corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient memory.",
		}}},
		wantErrs: []string{"not scheduled", "Insufficient memory"},
	}, {
		tenant: "starting",
		pod: &corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "nats", State: running},
		}},
		wantErrs: []string{"running, not ready"},
	}, {
		tenant:   "no-pod",
		wantErrs: []string{"no pod yet"},
	}, {
		tenant: "scaled-to-zero",
		edit:   func(sts *appsv1.StatefulSet) { sts.Spec.Replicas = ptrTo(int32(0)) },
		// Zero of zero replicas is not an instance that serves.
		wantErrs: []string{"no pod yet"},
	}}

	ctx := context.Background()
	op := newTestOperator(t)
	// An unmanaged StatefulSet in the namespace: not reported.
	unmanaged := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "postgres", Namespace: testNamespace, Labels: map[string]string{"app": "postgres"}}}
	p, cs := newTestProvisioner(t, testConfig(), unmanaged)
	for _, tt := range slices.Backward(tests) { // created out of order: Health sorts
		if _, err := p.Ensure(ctx, op.spec(t, tt.tenant, 1)); err != nil {
			t.Fatal(err)
		}
		sts, err := cs.AppsV1().StatefulSets(testNamespace).Get(ctx, objectName(tt.tenant), getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if tt.edit != nil {
			tt.edit(sts)
			if sts, err = cs.AppsV1().StatefulSets(testNamespace).Update(ctx, sts, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		sts.Status = appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: tt.ready, AvailableReplicas: tt.ready}
		if _, err := cs.AppsV1().StatefulSets(testNamespace).UpdateStatus(ctx, sts, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if tt.pod != nil {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: objectName(tt.tenant) + "-0", Namespace: testNamespace, Labels: sts.Spec.Template.Labels},
				Spec:       sts.Spec.Template.Spec,
				Status:     *tt.pod,
			}
			if _, err := cs.CoreV1().Pods(testNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	got, err := p.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tenants []string
	for _, h := range got {
		tenants = append(tenants, h.Tenant)
	}
	want := []string{"crashing", "no-image", "no-pod", "ready", "scaled-to-zero", "starting", "unschedulable"}
	if !slices.Equal(tenants, want) {
		t.Fatalf("Health reported %v, want %v (sorted, managed only)", tenants, want)
	}
	byTenant := map[string]provision.Health{}
	for _, h := range got {
		byTenant[h.Tenant] = h
	}
	for _, tt := range tests {
		t.Run(tt.tenant, func(t *testing.T) {
			h := byTenant[tt.tenant]
			if h.URL != "nats://vrsky-nats-"+tt.tenant+".tenants.svc:4222" {
				t.Errorf("URL %q", h.URL)
			}
			if h.Ready != tt.want.Ready || h.Restarts != tt.want.Restarts {
				t.Errorf("ready %v, restarts %d; want %v, %d", h.Ready, h.Restarts, tt.want.Ready, tt.want.Restarts)
			}
			if h.Ready != (h.Err == "") {
				t.Errorf("ready %v with err %q", h.Ready, h.Err)
			}
			for _, s := range tt.wantErrs {
				if !strings.Contains(h.Err, s) {
					t.Errorf("err %q lacks %q", h.Err, s)
				}
			}
		})
	}
}

func TestHealthEmpty(t *testing.T) {
	p, _ := newTestProvisioner(t, testConfig())
	got, err := p.Health(context.Background())
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Health of no instances: %v, %v; want an empty list", got, err)
	}
}
