package natsx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// KeysFile is the name, in the embedded server's DataDir, of the operator
// keys it runs with (generated on first start, mode 0600). A node that
// joins another node's embedded server (Options.URL) passes a copy of it
// as Options.KeysFile.
const KeysFile = "nats-operator.json"

// Names of the two accounts VRSky itself runs in.
const (
	// SystemAccountName is the NATS system account: account claims are
	// pushed through it.
	SystemAccountName = "SYS"
	// PlatformAccountName is the account of the control plane (tenants,
	// keys, integrations, message tracking, leases, claim-check objects).
	// No tenant's streams live in it.
	PlatformAccountName = "VRSKY"
)

// Keys are the identities VRSky holds in NATS operator mode: the operator
// (or one of its signing keys) signs account claims, the system account
// pushes them to the servers' resolver, and the platform account holds the
// control plane. Every tenant's account key derives from the platform key
// (TenantAccount), so nodes need no other secret to act for any tenant.
type Keys struct {
	Operator nkeys.KeyPair
	System   nkeys.KeyPair
	Platform nkeys.KeyPair
}

// keysFile is KeysFile's JSON form: three nkey seeds.
type keysFile struct {
	Operator string `json:"operator"`
	System   string `json:"system_account"`
	Platform string `json:"platform_account"`
}

// GenerateKeys makes a new operator, system account and platform account.
func GenerateKeys() (*Keys, error) {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("natsx: operator key: %w", err)
	}
	sys, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("natsx: system account key: %w", err)
	}
	pl, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("natsx: platform account key: %w", err)
	}
	return &Keys{Operator: op, System: sys, Platform: pl}, nil
}

// LoadKeys reads a keys file (KeysFile's format).
func LoadKeys(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("natsx: keys file: %w", err)
	}
	k, err := parseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("natsx: keys file %s: %w", path, err)
	}
	return k, nil
}

func parseKeys(b []byte) (*Keys, error) {
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	parse := func(field, seed string, prefix nkeys.PrefixByte) (nkeys.KeyPair, error) {
		if seed == "" {
			return nil, fmt.Errorf("%s: missing", field)
		}
		kp, err := nkeys.FromSeed([]byte(seed))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if pre := nkeys.Prefix(pub); pre != prefix {
			return nil, fmt.Errorf("%s: a %s seed, want %s", field, pre, prefix)
		}
		return kp, nil
	}
	op, err := parse("operator", f.Operator, nkeys.PrefixByteOperator)
	if err != nil {
		return nil, err
	}
	sys, err := parse("system_account", f.System, nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	pl, err := parse("platform_account", f.Platform, nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	return &Keys{Operator: op, System: sys, Platform: pl}, nil
}

// Save writes k to path, which must not exist, readable by its owner only.
func (k *Keys) Save(path string) error {
	seed := func(kp nkeys.KeyPair) string {
		s, err := kp.Seed()
		if err != nil {
			return ""
		}
		return string(s)
	}
	b, err := json.MarshalIndent(keysFile{Operator: seed(k.Operator), System: seed(k.System), Platform: seed(k.Platform)}, "", "  ")
	if err != nil {
		return fmt.Errorf("natsx: keys file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("natsx: keys file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("natsx: keys file %s: %w", path, err)
	}
	return nil
}

// loadOrCreateKeys returns the keys in path, generating them there first
// when the file does not exist (a process that created it meanwhile wins).
func loadOrCreateKeys(path string) (*Keys, error) {
	k, err := LoadKeys(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateKeys(); err != nil {
		return nil, err
	}
	if err := k.Save(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadKeys(path)
		}
		return nil, err
	}
	return k, nil
}

func pubKey(kp nkeys.KeyPair) string {
	p, _ := kp.PublicKey() // a key pair made from a seed always has one
	return p
}

// OperatorPublicKey, SystemAccount and PlatformAccount are the keys'
// public halves.
func (k *Keys) OperatorPublicKey() string { return pubKey(k.Operator) }

// SystemAccount is the system account's public key.
func (k *Keys) SystemAccount() string { return pubKey(k.System) }

// PlatformAccount is the platform account's public key.
func (k *Keys) PlatformAccount() string { return pubKey(k.Platform) }

// OperatorJWT is the operator's self-signed claims naming the system
// account: what every server of the deployment trusts.
func (k *Keys) OperatorJWT() (string, error) {
	oc := jwt.NewOperatorClaims(k.OperatorPublicKey())
	oc.Name = "vrsky"
	oc.SystemAccount = k.SystemAccount()
	s, err := oc.Encode(k.Operator)
	if err != nil {
		return "", fmt.Errorf("natsx: operator claims: %w", err)
	}
	return s, nil
}

// AccountLimits are the JetStream limits an account's claims carry; a
// negative value is unlimited.
type AccountLimits struct {
	// StorageBytes bounds the account's file storage, all streams
	// together (JetStream refuses a write beyond it).
	StorageBytes int64
	// Streams and Consumers bound their counts.
	Streams, Consumers int64
}

// Unlimited has no JetStream limit.
var Unlimited = AccountLimits{StorageBytes: -1, Streams: -1, Consumers: -1}

// AccountJWT signs the claims of the account pub, named name, with
// JetStream enabled within lim (memory storage off: VRSky keeps every
// stream on disk) or, with jetStream false, disabled.
func (k *Keys) AccountJWT(pub, name string, jetStream bool, lim AccountLimits) (string, error) {
	ac := jwt.NewAccountClaims(pub)
	ac.Name = name
	if jetStream {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
			DiskStorage:   lim.StorageBytes,
			MemoryStorage: 0,
			Streams:       lim.Streams,
			Consumer:      lim.Consumers,
			MaxAckPending: -1,
			// Per-stream bounds are the streams' own business.
			DiskMaxStreamBytes:   -1,
			MemoryMaxStreamBytes: -1,
		}
	}
	s, err := ac.Encode(k.Operator)
	if err != nil {
		return "", fmt.Errorf("natsx: account %s claims: %w", name, err)
	}
	return s, nil
}

// TenantAccount is the account key of a tenant, derived from the platform
// account's seed, the tenant's name and its creation time (microseconds),
// so every node derives the same key and a tenant deleted and created
// again under the same name gets a new account.
func (k *Keys) TenantAccount(tenant string, createdMicros int64) (nkeys.KeyPair, error) {
	seed, err := k.Platform.Seed()
	if err != nil {
		return nil, fmt.Errorf("natsx: platform seed: %w", err)
	}
	mac := hmac.New(sha256.New, seed)
	mac.Write([]byte("vrsky/tenant-account/v1\x00" + tenant + "\x00" + strconv.FormatInt(createdMicros, 10)))
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("natsx: tenant %s account key: %w", tenant, err)
	}
	return kp, nil
}

// UserJWT mints a new user of account, for one connection: its JWT and
// its key pair (which signs the server's nonce). connTypes restricts how
// it may connect (jwt.ConnectionType*; none: any); perms, if not nil,
// what it may publish and subscribe to.
func UserJWT(account nkeys.KeyPair, name string, connTypes []string, perms *jwt.Permissions) (string, nkeys.KeyPair, error) {
	u, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, fmt.Errorf("natsx: user key: %w", err)
	}
	uc := jwt.NewUserClaims(pubKey(u))
	uc.Name = name
	uc.IssuerAccount = "" // signed by the account's identity key
	for _, ct := range connTypes {
		uc.AllowedConnectionTypes.Add(ct)
	}
	if perms != nil {
		uc.Permissions = *perms
	}
	s, err := uc.Encode(account)
	if err != nil {
		return "", nil, fmt.Errorf("natsx: user claims: %w", err)
	}
	return s, u, nil
}

// ServerConfig is the nats-server configuration block that makes a server
// trust k's operator: what an operator adds to an external cluster's
// configuration (see the tenancy guide). resolverDir is where the server
// keeps the account claims VRSky pushes.
func (k *Keys) ServerConfig(resolverDir string) (string, error) {
	op, err := k.OperatorJWT()
	if err != nil {
		return "", err
	}
	sys, err := k.AccountJWT(k.SystemAccount(), SystemAccountName, false, AccountLimits{})
	if err != nil {
		return "", err
	}
	pl, err := k.AccountJWT(k.PlatformAccount(), PlatformAccountName, true, Unlimited)
	if err != nil {
		return "", err
	}
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# VRSky's operator (vrsky nats server-config): every server of the cluster needs this block.\n")
	fmt.Fprintf(&b, "operator: %s\n", q(op))
	fmt.Fprintf(&b, "system_account: %s\n", q(k.SystemAccount()))
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %s\n  allow_delete: true\n  interval: \"2m\"\n}\n", q(resolverDir))
	fmt.Fprintf(&b, "resolver_preload: {\n  %s: %s\n  %s: %s\n}\n", k.SystemAccount(), q(sys), k.PlatformAccount(), q(pl))
	return b.String(), nil
}
