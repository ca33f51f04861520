// Package k8s provisions the dedicated NATS instance of a tenant on
// Kubernetes: a StatefulSet of one nats-server with a volume for JetStream,
// a headless Service and a client Service, the server's config in a
// ConfigMap, and a NetworkPolicy that admits only VRSky's own pods. It talks
// to the API server through client-go with the rules Rules lists, which is
// what the Helm chart grants the vrsky service account.
//
// Every object is named vrsky-nats-<tenant> (with a suffix where two share a
// kind) and labelled app.kubernetes.io/managed-by=vrsky,
// app.kubernetes.io/component=tenant-nats, vrsky.io/tenant=<tenant>.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/vrsky/vrsky/platform/provision"
)

// DefaultImage is the nats-server image instances run when Config.Image is
// empty: the official image, pinned to the nats-server release that go.mod
// requires, so the config the tests parse with that release's parser is the
// one the pod reads.
const DefaultImage = "nats:2.15.2-alpine"

// DefaultStorageSize is the JetStream volume's size when Config.StorageSize
// is zero.
const DefaultStorageSize = "10Gi"

// The ports of an instance.
const (
	ClientPort  = 4222
	MonitorPort = 8222
)

// MaxTenantLen is the longest tenant name this provisioner accepts: the
// StatefulSet vrsky-nats-<tenant> must leave room in a 63-character label
// value for the controller-revision-hash label (<name>-<10 characters>) that
// Kubernetes puts on its pods.
const MaxTenantLen = 63 - len(namePrefix) - 11

// Config says where and how instances run. Zero fields take the defaults
// named on them; New copies it, and it does not change afterwards.
type Config struct {
	// Namespace holds every instance's objects; "default" when empty.
	Namespace string
	// Image is the nats-server image; DefaultImage when empty.
	Image string
	// StorageSize is the size of each instance's JetStream volume;
	// DefaultStorageSize when zero. A later change applies to new instances
	// only: a StatefulSet's volume claim template cannot change, and growing
	// a claim is done on the PersistentVolumeClaim.
	StorageSize resource.Quantity
	// StorageClass names the volume's StorageClass; the cluster's default
	// class when empty.
	StorageClass string
	// Resources are the nats container's requests and limits; when neither
	// is set: requests 100m CPU and 256Mi memory, limit 1Gi memory (no CPU
	// limit, so a busy server is not throttled). GOMEMLIMIT is set to 90% of
	// the memory limit when there is one.
	Resources corev1.ResourceRequirements
	// Labels are put on every object besides the provisioner's own labels,
	// which win where a key is in both.
	Labels map[string]string
	// VRSkySelector are the labels of the vrsky nodes' pods, the only pods
	// the NetworkPolicy lets reach an instance (client and monitoring port).
	// Required: an empty selector would admit every pod.
	VRSkySelector map[string]string
	// VRSkyNamespaceSelector, when set, are the labels of the namespaces the
	// vrsky nodes run in (for example {"kubernetes.io/metadata.name":
	// "vrsky"}); when empty they run in Namespace.
	VRSkyNamespaceSelector map[string]string
	// SyncAlways makes every instance fsync each JetStream write before
	// acknowledging it, whatever the Spec says (a Spec may also ask for it).
	SyncAlways bool
}

// Validate reports the first field that New cannot work with.
func (c Config) Validate() error {
	if c.Namespace != "" {
		if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
			return &FieldError{Field: "Config.Namespace", Reason: errs[0]}
		}
	}
	if !c.StorageSize.IsZero() && c.StorageSize.Sign() < 0 {
		return &FieldError{Field: "Config.StorageSize", Reason: "negative"}
	}
	if len(c.VRSkySelector) == 0 {
		return &FieldError{Field: "Config.VRSkySelector", Reason: "empty; the NetworkPolicy would admit every pod in the namespace"}
	}
	for _, set := range []struct {
		field  string
		labels map[string]string
	}{{"Config.Labels", c.Labels}, {"Config.VRSkySelector", c.VRSkySelector}, {"Config.VRSkyNamespaceSelector", c.VRSkyNamespaceSelector}} {
		for k, v := range set.labels {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return &FieldError{Field: set.field, Reason: fmt.Sprintf("key %q: %s", k, errs[0])}
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return &FieldError{Field: set.field, Reason: fmt.Sprintf("value of %q: %s", k, errs[0])}
			}
		}
	}
	return nil
}

// withDefaults is c with its zero fields filled in, maps copied.
func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = metav1.NamespaceDefault
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.StorageSize.IsZero() {
		c.StorageSize = resource.MustParse(DefaultStorageSize)
	}
	if len(c.Resources.Requests) == 0 && len(c.Resources.Limits) == 0 {
		c.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("256Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("1Gi"),
			},
		}
	} else {
		c.Resources = *c.Resources.DeepCopy()
	}
	c.Labels = maps.Clone(c.Labels)
	c.VRSkySelector = maps.Clone(c.VRSkySelector)
	c.VRSkyNamespaceSelector = maps.Clone(c.VRSkyNamespaceSelector)
	return c
}

// FieldError is a Spec or Config that the provisioner refuses; Field names
// what is wrong (Spec.Tenant, Config.VRSkySelector, …).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return "provision/k8s: " + e.Field + ": " + e.Reason
}

// Provisioner creates, updates and removes tenants' dedicated instances in
// one namespace. Its methods may be called concurrently; two Ensure calls
// for one tenant at once are safe (a conflicting write is retried) but
// pointless.
type Provisioner struct {
	client kubernetes.Interface
	cfg    Config
	// err is Config.Validate's verdict, returned by every method.
	err error
}

// New returns a provisioner that works through client; a cfg that fails
// Validate makes every method return that error.
func New(client kubernetes.Interface, cfg Config) *Provisioner {
	return &Provisioner{client: client, cfg: cfg.withDefaults(), err: cfg.Validate()}
}

// Ensure creates the tenant's instance, or brings an existing one to spec,
// and returns its address. It returns once the API server has the objects,
// not once the server is up: Health says when it is. A Spec that changed
// (new JWTs) rewrites the ConfigMap and rolls the pod; an unchanged one
// writes nothing.
func (p *Provisioner) Ensure(ctx context.Context, spec provision.Spec) (provision.Instance, error) {
	if p.err != nil {
		return provision.Instance{}, p.err
	}
	if err := validateSpec(spec); err != nil {
		return provision.Instance{}, err
	}
	spec.SyncAlways = spec.SyncAlways || p.cfg.SyncAlways
	conf, err := renderConfig(spec, fmt.Sprintf("0.0.0.0:%d", ClientPort), fmt.Sprintf("0.0.0.0:%d", MonitorPort), dataDir)
	if err != nil {
		return provision.Instance{}, err
	}
	o := p.objects(spec.Tenant, conf)
	ns := p.cfg.Namespace
	core, apps, netv1 := p.client.CoreV1(), p.client.AppsV1(), p.client.NetworkingV1()
	// The ConfigMap first, the StatefulSet after the Services: a pod that
	// starts finds its config, and its governing Service exists.
	if err := ensure(ctx, core.ConfigMaps(ns), "ConfigMap", o.configMap, updateConfigMap); err != nil {
		return provision.Instance{}, err
	}
	if err := ensure(ctx, netv1.NetworkPolicies(ns), "NetworkPolicy", o.networkPolicy, updateNetworkPolicy); err != nil {
		return provision.Instance{}, err
	}
	if err := ensure(ctx, core.Services(ns), "Service", o.headless, updateService); err != nil {
		return provision.Instance{}, err
	}
	if err := ensure(ctx, core.Services(ns), "Service", o.client, updateService); err != nil {
		return provision.Instance{}, err
	}
	if err := ensure(ctx, apps.StatefulSets(ns), "StatefulSet", o.statefulSet, updateStatefulSet); err != nil {
		return provision.Instance{}, err
	}
	return provision.Instance{Tenant: spec.Tenant, URL: p.url(spec.Tenant)}, nil
}

// Remove deletes the tenant's instance and its data: the StatefulSet, its
// volume claims, both Services, the ConfigMap and the NetworkPolicy. It
// returns once the API server accepted the deletions; Kubernetes stops the
// pod and frees the volume after. A tenant without an instance is not an
// error.
func (p *Provisioner) Remove(ctx context.Context, tenant string) error {
	if p.err != nil {
		return p.err
	}
	if err := validateTenant(tenant); err != nil {
		return err
	}
	ns := p.cfg.Namespace
	core, apps, netv1 := p.client.CoreV1(), p.client.AppsV1(), p.client.NetworkingV1()
	name := objectName(tenant)
	// Claims of ordinals 0..replicas-1; the StatefulSet says how many it had.
	claims := []string{claimName(dataVolume, name, 0)}
	sts, err := apps.StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		claims = claims[:0]
		n := int32(1)
		if sts.Spec.Replicas != nil && *sts.Spec.Replicas > n {
			n = *sts.Spec.Replicas
		}
		for _, vct := range sts.Spec.VolumeClaimTemplates {
			for i := range n {
				claims = append(claims, claimName(vct.Name, name, i))
			}
		}
	case !isNotFound(err):
		return fmt.Errorf("provision/k8s: remove %s: get StatefulSet %s: %w", tenant, name, err)
	}
	background := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &background}
	deletions := []struct {
		kind, name string
		delete     func(context.Context, string, metav1.DeleteOptions) error
	}{
		{"StatefulSet", name, apps.StatefulSets(ns).Delete},
		{"Service", name, core.Services(ns).Delete},
		{"Service", headlessName(tenant), core.Services(ns).Delete},
		{"NetworkPolicy", name, netv1.NetworkPolicies(ns).Delete},
		{"ConfigMap", configMapName(tenant), core.ConfigMaps(ns).Delete},
	}
	for _, c := range claims {
		deletions = append(deletions, struct {
			kind, name string
			delete     func(context.Context, string, metav1.DeleteOptions) error
		}{"PersistentVolumeClaim", c, core.PersistentVolumeClaims(ns).Delete})
	}
	var errs []error
	for _, d := range deletions {
		if err := d.delete(ctx, d.name, del); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", d.kind, d.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("provision/k8s: remove %s: %w", tenant, err)
	}
	return nil
}

// validateTenant refuses a tenant name that cannot name the objects.
func validateTenant(tenant string) error {
	if tenant == "" {
		return &FieldError{Field: "Spec.Tenant", Reason: "empty"}
	}
	if errs := validation.IsDNS1123Label(tenant); len(errs) > 0 {
		return &FieldError{Field: "Spec.Tenant", Reason: fmt.Sprintf("%q is not a DNS label: %s", tenant, errs[0])}
	}
	if len(tenant) > MaxTenantLen {
		return &FieldError{Field: "Spec.Tenant", Reason: fmt.Sprintf("%q is longer than %d characters, the most a StatefulSet name leaves room for on Kubernetes", tenant, MaxTenantLen)}
	}
	return nil
}

// validateSpec refuses a Spec whose server would not start or would not
// admit the tenant: each JWT must decode as the claims it stands for, each
// account's JWT must be about that account and issued by the operator.
func validateSpec(spec provision.Spec) error {
	if err := validateTenant(spec.Tenant); err != nil {
		return err
	}
	if spec.OperatorJWT == "" {
		return &FieldError{Field: "Spec.OperatorJWT", Reason: "empty"}
	}
	op, err := jwt.DecodeOperatorClaims(spec.OperatorJWT)
	if err != nil {
		return &FieldError{Field: "Spec.OperatorJWT", Reason: "not an operator JWT: " + err.Error()}
	}
	issuers := map[string]bool{op.Subject: true}
	for _, k := range op.SigningKeys {
		issuers[k] = true
	}
	accounts := []struct{ keyField, jwtField, key, token string }{
		{"Spec.SystemAccount", "Spec.SystemAccountJWT", spec.SystemAccount, spec.SystemAccountJWT},
		{"Spec.Account", "Spec.AccountJWT", spec.Account, spec.AccountJWT},
	}
	for _, a := range accounts {
		if a.key == "" {
			return &FieldError{Field: a.keyField, Reason: "empty"}
		}
		if !nkeys.IsValidPublicAccountKey(a.key) {
			return &FieldError{Field: a.keyField, Reason: fmt.Sprintf("%q is not an account public key", a.key)}
		}
		if a.token == "" {
			return &FieldError{Field: a.jwtField, Reason: "empty"}
		}
		claims, err := jwt.DecodeAccountClaims(a.token)
		if err != nil {
			return &FieldError{Field: a.jwtField, Reason: "not an account JWT: " + err.Error()}
		}
		if claims.Subject != a.key {
			return &FieldError{Field: a.jwtField, Reason: fmt.Sprintf("its subject is %s, not %s", claims.Subject, a.keyField)}
		}
		if !issuers[claims.Issuer] {
			return &FieldError{Field: a.jwtField, Reason: "not issued by the operator or one of its signing keys"}
		}
	}
	if spec.Account == spec.SystemAccount {
		return &FieldError{Field: "Spec.Account", Reason: "is the system account"}
	}
	return nil
}

// url is the client URL of the tenant's instance.
func (p *Provisioner) url(tenant string) string {
	return fmt.Sprintf("nats://%s.%s.svc:%d", objectName(tenant), p.cfg.Namespace, ClientPort)
}
