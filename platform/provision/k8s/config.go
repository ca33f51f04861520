package k8s

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"sort"

	"github.com/vrsky/vrsky/platform/provision"
)

// safeValue is what may stand between the double quotes of a rendered
// config value: JWTs (base64url and dots), nkeys, addresses, paths. Spec is
// validated before rendering; this guards the renderer on its own.
var safeValue = regexp.MustCompile(`^[A-Za-z0-9._:/\-]+$`)

// renderConfig is the nats-server config of a tenant's dedicated instance:
// operator mode (the operator's JWT inline, the system account named), a full
// account resolver whose directory lives on the data volume with the system
// and tenant accounts preloaded, and JetStream storing under storeDir. The
// server learns later claim updates through the system account
// ($SYS.REQ.CLAIMS.UPDATE) and keeps them in the resolver directory.
//
// TODO: use provision.Config once it lands (same signature; this one exists
// only until then).
func renderConfig(spec provision.Spec, listen, monitor, storeDir string) ([]byte, error) {
	values := map[string]string{
		"Tenant": spec.Tenant, "OperatorJWT": spec.OperatorJWT,
		"SystemAccount": spec.SystemAccount, "SystemAccountJWT": spec.SystemAccountJWT,
		"Account": spec.Account, "AccountJWT": spec.AccountJWT,
		"listen": listen, "monitor": monitor, "storeDir": storeDir,
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !safeValue.MatchString(values[name]) {
			return nil, fmt.Errorf("provision/k8s: config: %s: empty or holds a character the config cannot carry unquoted", name)
		}
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# nats-server config of tenant %s's dedicated instance, written by vrsky.\n", spec.Tenant)
	fmt.Fprintf(&b, "server_name: %q\n", objectName(spec.Tenant))
	fmt.Fprintf(&b, "listen: %q\n", listen)
	fmt.Fprintf(&b, "http: %q\n", monitor)
	b.WriteString("\n# Operator mode: only accounts the operator signed exist here.\n")
	fmt.Fprintf(&b, "operator: %q\n", spec.OperatorJWT)
	fmt.Fprintf(&b, "system_account: %q\n", spec.SystemAccount)
	b.WriteString("resolver: {\n")
	b.WriteString("  type: full\n")
	fmt.Fprintf(&b, "  dir: %q\n", path.Join(storeDir, "resolver"))
	b.WriteString("  allow_delete: false\n")
	b.WriteString("  interval: \"2m\"\n")
	b.WriteString("}\n")
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %q: %q\n", spec.SystemAccount, spec.SystemAccountJWT)
	fmt.Fprintf(&b, "  %q: %q\n", spec.Account, spec.AccountJWT)
	b.WriteString("}\n")
	b.WriteString("\njetstream: {\n")
	fmt.Fprintf(&b, "  store_dir: %q\n", storeDir)
	if spec.SyncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}
