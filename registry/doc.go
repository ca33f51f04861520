// Package registry is VRSky's connector registry: it validates uploaded
// Wasm connectors at the door (manifest, size, Wasm magic, compilation
// under the host, imports against ABI v1 and the manifest's capabilities,
// exports, config schema, version immutability, a smoke run, an optional
// ed25519 signature), stores the module by SHA-256 in the object store and
// its metadata in the control-plane store, serves the marketplace
// catalogue (built-in, shipped and uploaded connectors together), and
// resolves uploaded steps for the runtime's catalogue, tenant-aware and
// compiled lazily.
//
// Connector names are one namespace: the first publisher of a name owns it,
// and a name of the built-in catalogue cannot be uploaded. That keeps a
// pinned reference ("name@version") unambiguous across tenants.
//
// Only steps can be uploaded: the host runs Wasm steps, not Wasm sources or
// sinks (wasmstep.New is the only Wasm connector kind).
package registry
