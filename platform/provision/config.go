package provision

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// MaxPayload is a dedicated instance's max_payload, the same 8 MiB as the
// embedded server's (platform/natsx), so a message that fits on the shared
// servers fits on a dedicated one.
const MaxPayload = 8 << 20

// ServerNamePrefix starts a dedicated instance's server_name, which ends
// with its tenant's name.
const ServerNamePrefix = "vrsky-tenant-"

// ResolverDir is the folder, under the data folder given to Config, where
// the instance's full resolver keeps its accounts' JWTs.
const ResolverDir = "resolver"

// tenantLabel is what a tenant name must be: a DNS label (RFC 1123), as
// the API accepts them.
var tenantLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// SpecError is a Spec, or an argument of Config, that cannot make a
// server configuration. Field names the Spec field (or the argument) at
// fault.
type SpecError struct {
	// Field is a Spec field ("Tenant", "OperatorJWT", …) or an argument of
	// Config ("listen", "monitor", "storeDir").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("provision: %s: %s", e.Field, e.Reason)
}

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks that s can configure a server: a tenant name that is a
// DNS label, an operator JWT, and the system and tenant accounts' keys and
// JWTs, each account JWT issued by the operator (or one of its signing
// keys) for the key beside it.
func (s Spec) Validate() error {
	if s.Tenant == "" {
		return specErr("Tenant", "required")
	}
	if !tenantLabel.MatchString(s.Tenant) {
		return specErr("Tenant", "%q is not a DNS label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", s.Tenant)
	}
	if s.OperatorJWT == "" {
		return specErr("OperatorJWT", "required")
	}
	// nats-server reads an operator value as a file name unless it starts
	// like a JWT ("eyJ", the encoding of `{"`); refuse anything else
	// rather than have the server open a file of that name.
	if !strings.HasPrefix(s.OperatorJWT, "eyJ") {
		return specErr("OperatorJWT", "not a JWT")
	}
	op, err := jwt.DecodeOperatorClaims(s.OperatorJWT)
	if err != nil {
		return specErr("OperatorJWT", "%v", err)
	}
	if err := checkAccount("SystemAccount", s.SystemAccount, s.SystemAccountJWT, op); err != nil {
		return err
	}
	if err := checkAccount("Account", s.Account, s.AccountJWT, op); err != nil {
		return err
	}
	if s.Account == s.SystemAccount {
		return specErr("Account", "is the system account; the tenant needs an account of its own")
	}
	return nil
}

// checkAccount checks an account's public key (field) and its JWT
// (field+"JWT") against the operator that must have issued it.
func checkAccount(field, pub, token string, op *jwt.OperatorClaims) error {
	if pub == "" {
		return specErr(field, "required")
	}
	if !nkeys.IsValidPublicAccountKey(pub) {
		return specErr(field, "%q is not an account public key", pub)
	}
	if token == "" {
		return specErr(field+"JWT", "required")
	}
	ac, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		return specErr(field+"JWT", "%v", err)
	}
	if ac.Subject != pub {
		return specErr(field+"JWT", "claims are for account %s, not %s", ac.Subject, pub)
	}
	if ac.Issuer != op.Subject && !op.SigningKeys.Contains(ac.Issuer) {
		return specErr(field+"JWT", "issued by %s, which is neither the operator %s nor one of its signing keys", ac.Issuer, op.Subject)
	}
	return nil
}

// Config renders the nats-server configuration of spec's dedicated
// instance: operator mode trusting spec's operator, the system account,
// a full resolver in storeDir/ResolverDir (allow_delete, so the operator
// can delete an account) preloaded with the system and tenant accounts,
// JetStream under storeDir (nats-server keeps streams in
// storeDir/jetstream), fsync on every write when spec.SyncAlways (else
// nats-server's default interval), clients on listen and the HTTP monitor
// (whose /healthz VRSky polls) on monitor, both "host:port".
//
// Every value is written as a quoted string whose bytes outside printable
// ASCII, and its quotes and backslashes, are escaped, so no value can end
// its string or add a key; the keys of resolver_preload are account
// public keys, checked to be so.
func Config(spec Spec, listen, monitor, storeDir string) ([]byte, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := checkHostPort("listen", listen); err != nil {
		return nil, err
	}
	if err := checkHostPort("monitor", monitor); err != nil {
		return nil, err
	}
	if storeDir == "" {
		return nil, specErr("storeDir", "required")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# nats-server configuration of tenant %s's dedicated instance, written by VRSky.\n", spec.Tenant)
	fmt.Fprintf(&b, "# VRSky rewrites this file at each start of the instance.\n")
	fmt.Fprintf(&b, "server_name: %s\n", quote(ServerNamePrefix+spec.Tenant))
	fmt.Fprintf(&b, "listen: %s\n", quote(listen))
	fmt.Fprintf(&b, "http: %s\n", quote(monitor))
	fmt.Fprintf(&b, "max_payload: %d\n", MaxPayload)
	fmt.Fprintf(&b, "logtime: true\n")
	fmt.Fprintf(&b, "\noperator: %s\n", quote(spec.OperatorJWT))
	fmt.Fprintf(&b, "system_account: %s\n", quote(spec.SystemAccount))
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %s\n  allow_delete: true\n}\n", quote(filepath.Join(storeDir, ResolverDir)))
	fmt.Fprintf(&b, "resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %s\n", spec.SystemAccount, quote(spec.SystemAccountJWT))
	fmt.Fprintf(&b, "  %s: %s\n", spec.Account, quote(spec.AccountJWT))
	fmt.Fprintf(&b, "}\n")
	fmt.Fprintf(&b, "\njetstream: {\n  store_dir: %s\n", quote(storeDir))
	if spec.SyncAlways {
		fmt.Fprintf(&b, "  sync_interval: always\n")
	}
	fmt.Fprintf(&b, "}\n")
	return b.Bytes(), nil
}

// checkHostPort checks a "host:port" argument of Config; port 0 is
// refused because nats-server reads it as its default port, not as "any".
func checkHostPort(field, hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return specErr(field, "%q is not host:port: %v", hp, err)
	}
	if host == "" {
		return specErr(field, "%q has no host", hp)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return specErr(field, "%q: the port must be 1-65535", hp)
	}
	return nil
}

// quote renders s as a double-quoted string of nats-server's
// configuration language, in which `\"`, `\\` and `\xHH` are escapes: every
// byte that is not printable ASCII, and '"' and '\\', is written as \xHH.
// A quoted string is never read as a variable reference ($NAME) or a
// number, and cannot be ended early.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
