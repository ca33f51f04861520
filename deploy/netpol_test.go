package deploy

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// endpoint is one end of a connection for the NetworkPolicy evaluator: a
// pod (namespace, its labels and the namespace's) or an address outside
// the cluster (ip).
type endpoint struct {
	name     string
	ns       string
	nsLabels map[string]string
	labels   map[string]string
	ip       string
}

// admits reports whether policies let from open a connection to to on
// port: the egress side of from and the ingress side of to must each be
// either unisolated (no policy of that type selects the pod) or admitted
// by a rule of a policy that selects it, as Kubernetes defines it.
func admits(t *testing.T, policies []*networkingv1.NetworkPolicy, from, to endpoint, proto corev1.Protocol, port int32) bool {
	t.Helper()
	return side(t, policies, from, to, networkingv1.PolicyTypeEgress, proto, port) &&
		side(t, policies, to, from, networkingv1.PolicyTypeIngress, proto, port)
}

// side is the verdict of the policies selecting self (a pod; addresses
// outside the cluster have no policies) on a connection with peer.
func side(t *testing.T, policies []*networkingv1.NetworkPolicy, self, peer endpoint, dir networkingv1.PolicyType, proto corev1.Protocol, port int32) bool {
	if self.ip != "" {
		return true
	}
	isolated := false
	for _, p := range policies {
		if p.Namespace != self.ns || !selects(t, &p.Spec.PodSelector, self.labels) || !hasType(p, dir) {
			continue
		}
		isolated = true
		if dir == networkingv1.PolicyTypeIngress {
			for _, r := range p.Spec.Ingress {
				if peersMatch(t, r.From, p.Namespace, peer) && portsMatch(r.Ports, proto, port) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Egress {
				if peersMatch(t, r.To, p.Namespace, peer) && portsMatch(r.Ports, proto, port) {
					return true
				}
			}
		}
	}
	return !isolated
}

func hasType(p *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	for _, pt := range p.Spec.PolicyTypes {
		if pt == dir {
			return true
		}
	}
	return false
}

func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(l))
}

// peersMatch: an empty list is every peer.
func peersMatch(t *testing.T, peers []networkingv1.NetworkPolicyPeer, policyNS string, e endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if e.ip != "" && inBlock(t, p.IPBlock, e.ip) {
				return true
			}
			continue
		}
		if e.ip != "" {
			continue
		}
		nsOK := e.ns == policyNS
		if p.NamespaceSelector != nil {
			nsOK = selects(t, p.NamespaceSelector, e.nsLabels)
		}
		podOK := p.PodSelector == nil || selects(t, p.PodSelector, e.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

func inBlock(t *testing.T, b *networkingv1.IPBlock, ip string) bool {
	addr := netip.MustParseAddr(ip)
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		t.Fatalf("ipBlock %q: %v", b.CIDR, err)
	}
	if !cidr.Contains(addr) {
		return false
	}
	for _, x := range b.Except {
		ex, err := netip.ParsePrefix(x)
		if err != nil {
			t.Fatalf("ipBlock except %q: %v", x, err)
		}
		if ex.Contains(addr) {
			return false
		}
	}
	return true
}

// portsMatch: an empty list is every port.
func portsMatch(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil || (p.Port.IntValue() == int(port)) || (p.EndPort != nil && port >= int32(p.Port.IntValue()) && port <= *p.EndPort) {
			return true
		}
	}
	return false
}
