package k8s

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels and annotations the provisioner sets.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelComponent = "app.kubernetes.io/component"
	LabelTenant    = "vrsky.io/tenant"

	// ManagedBy and Component are the values of LabelManagedBy and
	// LabelComponent on every object: Health lists by them.
	ManagedBy = "vrsky"
	Component = "tenant-nats"

	// AnnotationConfigHash, on the pod template, is the SHA-256 of the
	// server's config: a new config changes the template, which rolls the
	// pod onto it.
	AnnotationConfigHash = "vrsky.io/config-sha256"
	// AnnotationSpecHash, on each object, is the SHA-256 of what the
	// provisioner last wrote there; Ensure updates an object only when the
	// one it would write hashes differently.
	AnnotationSpecHash = "vrsky.io/spec-sha256"
)

const (
	namePrefix = "vrsky-nats-"
	// containerName is the nats-server container's name in the pod.
	containerName = "nats"
	// configKey is the config's key in the ConfigMap, configDir where the
	// ConfigMap is mounted.
	configKey = "nats.conf"
	configDir = "/etc/nats-config"
	// dataVolume is the volume claim template's name; dataDir is where the
	// volume is mounted: JetStream's store_dir, the resolver's dir below it.
	dataVolume = "data"
	dataDir    = "/data"
	// runAs is the pod's user and group id; fsGroup makes the volume theirs.
	runAs = 1000
	// healthPath is the probes' path: nats-server's health check, passing
	// once JetStream is enabled.
	healthPath = "/healthz?js-enabled-only=true"
)

// objectName names the tenant's StatefulSet, client Service and
// NetworkPolicy.
func objectName(tenant string) string { return namePrefix + tenant }

// headlessName names the tenant's headless (governing) Service.
func headlessName(tenant string) string { return objectName(tenant) + "-headless" }

// configMapName names the tenant's ConfigMap.
func configMapName(tenant string) string { return objectName(tenant) + "-config" }

// claimName is the PersistentVolumeClaim the StatefulSet controller makes
// from template claim for the pod of ordinal i of StatefulSet sts.
func claimName(claim, sts string, i int32) string {
	return claim + "-" + sts + "-" + strconv.Itoa(int(i))
}

// selectorLabels pick the tenant's pod; they never change, as a
// StatefulSet's selector cannot.
func selectorLabels(tenant string) map[string]string {
	return map[string]string{
		LabelName:     "nats",
		LabelInstance: objectName(tenant),
	}
}

// labels are those of every object of the tenant's: Config.Labels, then the
// provisioner's own.
func (p *Provisioner) labels(tenant string) map[string]string {
	l := maps.Clone(p.cfg.Labels)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, selectorLabels(tenant))
	l[LabelManagedBy] = ManagedBy
	l[LabelComponent] = Component
	l[LabelTenant] = tenant
	return l
}

// objects are what Ensure writes for one tenant.
type objects struct {
	configMap     *corev1.ConfigMap
	headless      *corev1.Service
	client        *corev1.Service
	statefulSet   *appsv1.StatefulSet
	networkPolicy *networkingv1.NetworkPolicy
}

// objects builds the tenant's objects around the server config conf, each
// stamped with AnnotationSpecHash.
func (p *Provisioner) objects(tenant string, conf []byte) objects {
	ns := p.cfg.Namespace
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: p.labels(tenant)}
	}
	o := objects{
		configMap: &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta(configMapName(tenant)),
			// The config holds JWTs and public keys only: signed public
			// claims, no seeds or passwords, so a ConfigMap (not a Secret)
			// is the right home for it.
			Data: map[string]string{configKey: string(conf)},
		},
		headless: &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(headlessName(tenant)),
			Spec: corev1.ServiceSpec{
				ClusterIP: corev1.ClusterIPNone,
				Selector:  selectorLabels(tenant),
				// The pod's DNS name resolves while it starts, so its
				// JetStream can be inspected before it is ready.
				PublishNotReadyAddresses: true,
				Ports: []corev1.ServicePort{
					servicePort("client", ClientPort),
					servicePort("monitor", MonitorPort),
				},
			},
		},
		client: &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(objectName(tenant)),
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: selectorLabels(tenant),
				Ports:    []corev1.ServicePort{servicePort("client", ClientPort)},
			},
		},
		statefulSet:   p.statefulSet(tenant, conf, meta(objectName(tenant))),
		networkPolicy: p.networkPolicy(tenant, meta(objectName(tenant))),
	}
	stamp(o.configMap, o.configMap.Data)
	stamp(o.headless, o.headless.Spec)
	stamp(o.client, o.client.Spec)
	stamp(o.statefulSet, o.statefulSet.Spec)
	stamp(o.networkPolicy, o.networkPolicy.Spec)
	return o
}

func servicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{
		Name:       name,
		Protocol:   corev1.ProtocolTCP,
		Port:       port,
		TargetPort: intstr.FromString(name),
	}
}

func (p *Provisioner) statefulSet(tenant string, conf []byte, meta metav1.ObjectMeta) *appsv1.StatefulSet {
	sum := sha256.Sum256(conf)
	probe := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: healthPath, Port: intstr.FromString("monitor"), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds: period, TimeoutSeconds: 5, FailureThreshold: failures, SuccessThreshold: 1,
		}
	}
	var env []corev1.EnvVar
	if limit, ok := p.cfg.Resources.Limits[corev1.ResourceMemory]; ok && !limit.IsZero() {
		// The Go runtime collects harder as it nears this, before the
		// kernel's OOM killer would act on the limit.
		env = append(env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(limit.Value()/10*9, 10)})
	}
	var storageClass *string
	if p.cfg.StorageClass != "" {
		storageClass = ptrTo(p.cfg.StorageClass)
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta,
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptrTo(int32(1)),
			Selector:            &metav1.LabelSelector{MatchLabels: selectorLabels(tenant)},
			ServiceName:         headlessName(tenant),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			// Deleting the StatefulSet deletes its data too (Remove also
			// deletes the claims itself, for clusters that ignore this).
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      p.labels(tenant),
					Annotations: map[string]string{AnnotationConfigHash: hex.EncodeToString(sum[:])},
				},
				Spec: corev1.PodSpec{
					// nats-server never calls the Kubernetes API.
					AutomountServiceAccountToken: ptrTo(false),
					EnableServiceLinks:           ptrTo(false),
					// Time for nats-server to flush JetStream and close
					// clients on SIGTERM.
					TerminationGracePeriodSeconds: ptrTo(int64(60)),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:        ptrTo(true),
						RunAsUser:           ptrTo(int64(runAs)),
						RunAsGroup:          ptrTo(int64(runAs)),
						FSGroup:             ptrTo(int64(runAs)),
						FSGroupChangePolicy: ptrTo(corev1.FSGroupChangeOnRootMismatch),
						SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:    containerName,
						Image:   p.cfg.Image,
						Command: []string{"nats-server"},
						Args:    []string{"--config", path.Join(configDir, configKey)},
						Ports: []corev1.ContainerPort{
							{Name: "client", ContainerPort: ClientPort, Protocol: corev1.ProtocolTCP},
							{Name: "monitor", ContainerPort: MonitorPort, Protocol: corev1.ProtocolTCP},
						},
						Env:       env,
						Resources: p.cfg.Resources,
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: configDir, ReadOnly: true},
							{Name: dataVolume, MountPath: dataDir},
						},
						// Recovering a large JetStream store may take
						// minutes: up to 15 before liveness counts.
						StartupProbe:   probe(10, 90),
						LivenessProbe:  probe(30, 3),
						ReadinessProbe: probe(10, 3),
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptrTo(true),
							ReadOnlyRootFilesystem:   ptrTo(true),
							AllowPrivilegeEscalation: ptrTo(false),
							Privileged:               ptrTo(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
					Volumes: []corev1.Volume{{
						Name: "config",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(tenant)},
						}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: metav1.ObjectMeta{Name: dataVolume, Labels: p.labels(tenant)},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: storageClass,
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: p.cfg.StorageSize},
					},
				},
			}},
		},
	}
}

// networkPolicy admits the client and monitoring ports from vrsky's pods
// only; with the policy in place every other ingress to the pod is refused.
func (p *Provisioner) networkPolicy(tenant string, meta metav1.ObjectMeta) *networkingv1.NetworkPolicy {
	peer := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: maps.Clone(p.cfg.VRSkySelector)}}
	if len(p.cfg.VRSkyNamespaceSelector) > 0 {
		peer.NamespaceSelector = &metav1.LabelSelector{MatchLabels: maps.Clone(p.cfg.VRSkyNamespaceSelector)}
	}
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selectorLabels(tenant)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{peer},
				Ports: []networkingv1.NetworkPolicyPort{
					{Protocol: &tcp, Port: ptrTo(intstr.FromInt32(ClientPort))},
					{Protocol: &tcp, Port: ptrTo(intstr.FromInt32(MonitorPort))},
				},
			}},
		},
	}
}

// stamp sets obj's AnnotationSpecHash to the hash of its labels and content
// (its spec, or a ConfigMap's data).
func stamp(obj metav1.Object, content any) {
	b, err := json.Marshal(struct {
		Labels  map[string]string `json:"labels"`
		Content any               `json:"content"`
	}{obj.GetLabels(), content})
	if err != nil {
		// The Kubernetes types always marshal.
		panic(fmt.Sprintf("provision/k8s: hash %s: %v", obj.GetName(), err))
	}
	sum := sha256.Sum256(b)
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationSpecHash] = hex.EncodeToString(sum[:])
	obj.SetAnnotations(a)
}

func ptrTo[T any](v T) *T { return &v }
