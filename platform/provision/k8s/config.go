package k8s

import "github.com/vrsky/vrsky/platform/provision"

// renderConfig is the nats-server config of a tenant's dedicated instance,
// provision.Config's: operator mode (the operator's JWT inline, the system
// account named), a full account resolver under storeDir (on the data
// volume) with the system and tenant accounts preloaded, and JetStream
// storing under storeDir. The server learns later claim updates through
// the system account ($SYS.REQ.CLAIMS.UPDATE).
func renderConfig(spec provision.Spec, listen, monitor, storeDir string) ([]byte, error) {
	return provision.Config(spec, listen, monitor, storeDir)
}
