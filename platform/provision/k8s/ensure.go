package k8s

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
)

// object is a pointer to a Kubernetes object type (*corev1.ConfigMap, …).
type object interface {
	metav1.Object
	runtime.Object
}

// resourceClient is the part of a typed client (ConfigMapInterface, …)
// that ensure uses.
type resourceClient[T object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// errNotOurs is the error for an object that has the name the provisioner
// would use but not its managed-by label: it is left alone.
type errNotOurs struct{ kind, name string }

func (e *errNotOurs) Error() string {
	return fmt.Sprintf("%s %s exists and is not managed by vrsky (no %s=%s label); refusing to overwrite it", e.kind, e.name, LabelManagedBy, ManagedBy)
}

// ensure makes the object named like desired match it: it creates it when
// missing; when it exists with another AnnotationSpecHash (or without one of
// desired's labels) it updates it, starting from the stored object so its
// resourceVersion, the fields the API server assigned and other writers'
// labels and annotations are kept, with apply copying desired's content
// over; otherwise it writes nothing. A write that loses a race (a conflict,
// or a create after another) is tried again from the start.
//
// Comparing hashes of what the provisioner wrote, rather than the stored
// spec itself, keeps the defaults the API server fills in from counting as
// differences; the cost is that a hand edit of a managed field is not
// undone until the provisioner's own spec changes.
func ensure[T object](ctx context.Context, c resourceClient[T], kind string, desired T, apply func(next, desired T)) error {
	name := desired.GetName()
	racing := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, racing, func() error {
		existing, err := c.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = c.Create(ctx, desired, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if existing.GetLabels()[LabelManagedBy] != ManagedBy {
			return &errNotOurs{kind, name}
		}
		if upToDate(existing, desired) {
			return nil
		}
		next, ok := existing.DeepCopyObject().(T)
		if !ok {
			return fmt.Errorf("a %T is not a %T", existing.DeepCopyObject(), desired)
		}
		next.SetLabels(merged(existing.GetLabels(), desired.GetLabels()))
		next.SetAnnotations(merged(existing.GetAnnotations(), desired.GetAnnotations()))
		apply(next, desired)
		_, err = c.Update(ctx, next, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("provision/k8s: ensure %s %s: %w", kind, name, err)
	}
	return nil
}

// upToDate: existing was last written from what desired holds.
func upToDate(existing, desired metav1.Object) bool {
	if existing.GetAnnotations()[AnnotationSpecHash] != desired.GetAnnotations()[AnnotationSpecHash] {
		return false
	}
	have := existing.GetLabels()
	for k, v := range desired.GetLabels() {
		if w, ok := have[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// merged is a copy of base with over's entries set.
func merged(base, over map[string]string) map[string]string {
	m := maps.Clone(base)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, over)
	return m
}

func updateConfigMap(next, desired *corev1.ConfigMap) {
	next.Data = maps.Clone(desired.Data)
	next.BinaryData = nil
}

// updateService keeps the addresses the API server assigned: they cannot
// change.
func updateService(next, desired *corev1.Service) {
	spec := *desired.Spec.DeepCopy()
	spec.ClusterIP, spec.ClusterIPs = next.Spec.ClusterIP, next.Spec.ClusterIPs
	spec.IPFamilies, spec.IPFamilyPolicy = next.Spec.IPFamilies, next.Spec.IPFamilyPolicy
	next.Spec = spec
}

// updateStatefulSet copies the fields of a StatefulSet's spec that may
// change; its selector, service name, pod management policy and volume
// claim templates cannot.
func updateStatefulSet(next, desired *appsv1.StatefulSet) {
	d := desired.Spec.DeepCopy()
	next.Spec.Replicas = d.Replicas
	next.Spec.Template = d.Template
	next.Spec.UpdateStrategy = d.UpdateStrategy
	next.Spec.PersistentVolumeClaimRetentionPolicy = d.PersistentVolumeClaimRetentionPolicy
	next.Spec.MinReadySeconds = d.MinReadySeconds
}

func updateNetworkPolicy(next, desired *networkingv1.NetworkPolicy) {
	next.Spec = *desired.Spec.DeepCopy()
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
