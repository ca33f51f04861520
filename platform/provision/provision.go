// Package provision starts, supervises and removes the dedicated NATS
// instances of tenants whose placement is "dedicated". A dedicated instance
// is a nats-server in operator mode that trusts VRSky's operator and knows
// two accounts only: the system account and its tenant's account, so it
// admits VRSky's nodes (which hold the tenant's account key) and that
// tenant's credentials, and nobody else.
//
// Two provisioners implement the same methods: Local (a supervised child
// process per tenant, for one machine) and, in package provision/k8s, a
// StatefulSet and a Service per tenant. The tenancy code that uses them
// owns the interface.
package provision

// Spec is what a dedicated instance needs to admit its tenant.
type Spec struct {
	// Tenant names the instance; a DNS label ([a-z0-9-], at most 63).
	Tenant string
	// OperatorJWT is the operator the server trusts (its signed claims).
	OperatorJWT string
	// SystemAccount is the system account's public key, SystemAccountJWT
	// its signed claims.
	SystemAccount, SystemAccountJWT string
	// Account is the tenant's account public key, AccountJWT its signed
	// claims (JetStream limits included). Both accounts are preloaded into
	// the server's resolver; later claim updates arrive through the system
	// account ($SYS.REQ.CLAIMS.UPDATE).
	Account, AccountJWT string
	// SyncAlways makes JetStream fsync each write before acknowledging it.
	SyncAlways bool
}

// Instance is a dedicated server's address.
type Instance struct {
	Tenant string
	// URL is the client URL VRSky's nodes dial, nats://host:port.
	URL string
}

// Health is one dedicated instance's state.
type Health struct {
	Tenant string `json:"tenant"`
	URL    string `json:"url"`
	// Monitor is the base URL of the instance's monitoring endpoints
	// (http://host:port; /varz, /jsz), for VRSky's NATS metrics.
	Monitor string `json:"monitor,omitempty"`
	// Ready: the server answers its health check with JetStream up.
	Ready bool `json:"ready"`
	// Restarts counts the times the instance was restarted after it died.
	Restarts int `json:"restarts"`
	// Err says why it is not ready; empty when Ready.
	Err string `json:"err,omitempty"`
}
