// These tests drive the provisioner through client-go's fake clientset
// (k8s.io/client-go/kubernetes/fake). It is the one fake the project allows:
// there is no Kubernetes cluster on the machines the tests run on (no
// kind, no kubelet, no container runtime), and the fake is client-go's own
// in-memory object tracker, typed like the real API and recording every
// call (Actions), which TestRulesCoverEveryCall checks against Rules. What
// the fake cannot show, the controllers' and kubelet's behaviour, the tests
// set by hand (a StatefulSet's status, a pod's container states, the claim
// the StatefulSet controller would make). The nats-server config itself is
// tested against the real nats-server: its parser, and a server started
// from it.
package k8s

import (
	"errors"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vrsky/vrsky/platform/provision"
)

const testNamespace = "tenants"

// testConfig is the Config the tests use unless they say otherwise.
func testConfig() Config {
	return Config{
		Namespace:     testNamespace,
		Labels:        map[string]string{"team": "platform"},
		VRSkySelector: map[string]string{"app.kubernetes.io/name": "vrsky"},
	}
}

func newTestProvisioner(t *testing.T, cfg Config, objs ...runtime.Object) (*Provisioner, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	return New(cs, cfg), cs
}

// testOperator signs the JWTs of a Spec: an operator, its system account
// and tenants' accounts, as VRSky's tenancy code would.
type testOperator struct {
	kp, sys nkeys.KeyPair
	pub     string
	sysPub  string
	jwt     string
	sysJWT  string
}

func newTestOperator(t *testing.T) *testOperator {
	t.Helper()
	o := &testOperator{kp: mustKey(t, nkeys.CreateOperator), sys: mustKey(t, nkeys.CreateAccount)}
	o.pub = mustPub(t, o.kp)
	o.sysPub = mustPub(t, o.sys)
	oc := jwt.NewOperatorClaims(o.pub)
	oc.Name = "vrsky"
	oc.SystemAccount = o.sysPub
	var err error
	if o.jwt, err = oc.Encode(o.kp); err != nil {
		t.Fatal(err)
	}
	sc := jwt.NewAccountClaims(o.sysPub)
	sc.Name = "SYS"
	if o.sysJWT, err = sc.Encode(o.kp); err != nil {
		t.Fatal(err)
	}
	return o
}

// spec is a Spec for tenant with a fresh account whose JetStream may hold
// streams streams.
func (o *testOperator) spec(t *testing.T, tenant string, streams int64) provision.Spec {
	t.Helper()
	acc := mustKey(t, nkeys.CreateAccount)
	pub := mustPub(t, acc)
	return provision.Spec{
		Tenant:      tenant,
		OperatorJWT: o.jwt, SystemAccount: o.sysPub, SystemAccountJWT: o.sysJWT,
		Account: pub, AccountJWT: o.accountJWT(t, pub, streams),
	}
}

// accountJWT signs the claims of account pub, with a JetStream limit of
// streams streams.
func (o *testOperator) accountJWT(t *testing.T, pub string, streams int64) string {
	t.Helper()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = "tenant"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: 1 << 30, MemoryStorage: 0, Streams: streams, Consumer: -1}
	s, err := ac.Encode(o.kp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKey(t *testing.T, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func mustPub(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// actionsSince are the calls the clientset recorded after the first n.
func actionsSince(cs *fake.Clientset, n int) []k8stesting.Action {
	return cs.Actions()[n:]
}

// writes are the actions among as that change something.
func writes(as []k8stesting.Action) []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range as {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			out = append(out, a)
		}
	}
	return out
}

// fieldOf is the Field of err's FieldError, or "" when it has none.
func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

var getOpts = metav1.GetOptions{}
