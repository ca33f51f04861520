package k8s

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vrsky/vrsky/platform/provision"
)

// Health reports every instance in the namespace (the StatefulSets with the
// provisioner's managed-by and component labels), sorted by tenant. An
// instance is Ready when all of its replicas, and at least one, are ready;
// Restarts adds up its containers' restart counts; Err, when it is not
// ready, says what its pod is waiting on or died of.
func (p *Provisioner) Health(ctx context.Context) ([]provision.Health, error) {
	if p.err != nil {
		return nil, p.err
	}
	ns := p.cfg.Namespace
	selector := labels.Set{LabelManagedBy: ManagedBy, LabelComponent: Component}.String()
	sets, err := p.client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("provision/k8s: health: list StatefulSets: %w", err)
	}
	pods, err := p.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("provision/k8s: health: list pods: %w", err)
	}
	podsOf := map[string][]corev1.Pod{}
	for _, pod := range pods.Items {
		t := pod.Labels[LabelTenant]
		podsOf[t] = append(podsOf[t], pod)
	}

	out := make([]provision.Health, 0, len(sets.Items))
	for _, sts := range sets.Items {
		tenant := sts.Labels[LabelTenant]
		if tenant == "" {
			continue
		}
		want := int32(1)
		if sts.Spec.Replicas != nil {
			want = *sts.Spec.Replicas
		}
		tenantPods := podsOf[tenant]
		slices.SortFunc(tenantPods, func(a, b corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })
		h := provision.Health{
			Tenant:   tenant,
			URL:      p.url(tenant),
			Monitor:  fmt.Sprintf("http://%s.%s.svc:%d", objectName(tenant), p.cfg.Namespace, MonitorPort),
			Ready:    want >= 1 && sts.Status.ReadyReplicas == want,
			Restarts: restarts(tenantPods),
		}
		if !h.Ready {
			h.Err = problem(tenantPods)
			if h.Err == "" {
				h.Err = fmt.Sprintf("%d of %d replicas ready", sts.Status.ReadyReplicas, want)
			}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b provision.Health) int { return cmp.Compare(a.Tenant, b.Tenant) })
	return out, nil
}

// restarts adds up the restart counts of the pods' containers.
func restarts(pods []corev1.Pod) int {
	n := 0
	for _, pod := range pods {
		for _, cs := range pod.Status.InitContainerStatuses {
			n += int(cs.RestartCount)
		}
		for _, cs := range pod.Status.ContainerStatuses {
			n += int(cs.RestartCount)
		}
	}
	return n
}

// problem says why the first pod that is not ready is not, or "" when
// nothing in the pods' status says: a container waiting (CrashLoopBackOff,
// ImagePullBackOff, …) or terminated, with the reason of its last death; a
// pod that cannot be scheduled; a running container failing its readiness
// check.
func problem(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return "no pod yet"
	}
	for _, pod := range pods {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return join(pod.Name, "not scheduled", c.Reason, c.Message)
			}
		}
		statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
		for _, cs := range statuses {
			if cs.Ready {
				continue
			}
			where := pod.Name + ": container " + cs.Name
			var msg string
			switch {
			case cs.State.Waiting != nil:
				msg = join(where, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			case cs.State.Terminated != nil:
				msg = join(where, "terminated", terminated(cs.State.Terminated))
			case cs.State.Running != nil && !isInit(pod, cs.Name):
				msg = where + ": running, not ready yet"
			default:
				continue
			}
			if last := cs.LastTerminationState.Terminated; last != nil && cs.State.Terminated == nil {
				msg += "; last terminated: " + terminated(last)
			}
			return msg
		}
		if pod.Status.Phase == corev1.PodPending {
			return pod.Name + ": pending"
		}
	}
	return ""
}

func terminated(t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf("%s, exit code %d", cmp.Or(t.Reason, "terminated"), t.ExitCode)
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s
}

func isInit(pod corev1.Pod, container string) bool {
	return slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == container })
}

// join joins the non-empty parts with ": ".
func join(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ": ")
}
