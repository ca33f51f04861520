package provision_test

import (
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/vrsky/vrsky/platform/provision"
)

// trust is an operator with its system account and one tenant account, as
// VRSky's tenancy would hold them.
type trust struct {
	op      nkeys.KeyPair
	opJWT   string
	sys     nkeys.KeyPair
	sysPub  string
	sysJWT  string
	acc     nkeys.KeyPair
	accPub  string
	accJWT  string
	accName string
}

// newTrust makes an operator, its system account and a tenant account
// with JetStream limits, each signed by the operator.
func newTrust(t *testing.T) *trust {
	t.Helper()
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opPub, _ := op.PublicKey()
	tr := &trust{op: op, accName: "tenant"}
	tr.sys, tr.sysPub, tr.sysJWT = tr.account(t, "SYS", false)
	tr.acc, tr.accPub, tr.accJWT = tr.account(t, tr.accName, true)
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "vrsky-test"
	oc.SystemAccount = tr.sysPub
	if tr.opJWT, err = oc.Encode(op); err != nil {
		t.Fatal(err)
	}
	return tr
}

// account makes an account signed by tr's operator, with JetStream limits
// when js.
func (tr *trust) account(t *testing.T, name string, js bool) (nkeys.KeyPair, string, string) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return kp, pub, tr.accountJWT(t, pub, name, js, 64<<20)
}

// accountJWT signs the claims of account pub, with JetStream limits (disk
// bytes) when js.
func (tr *trust) accountJWT(t *testing.T, pub, name string, js bool, disk int64) string {
	t.Helper()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = name
	if js {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: 16 << 20,
			DiskStorage:   disk,
			Streams:       10,
			Consumer:      100,
		}
	}
	tok, err := ac.Encode(tr.op)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// spec is tenant's Spec with tr's keys.
func (tr *trust) spec(tenant string) provision.Spec {
	return provision.Spec{
		Tenant:           tenant,
		OperatorJWT:      tr.opJWT,
		SystemAccount:    tr.sysPub,
		SystemAccountJWT: tr.sysJWT,
		Account:          tr.accPub,
		AccountJWT:       tr.accJWT,
	}
}

// user mints a user of account acc: its JWT and its seed.
func user(t *testing.T, acc nkeys.KeyPair, name string) (string, []byte) {
	t.Helper()
	u, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := u.PublicKey()
	seed, _ := u.Seed()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	tok, err := uc.Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	return tok, seed
}
