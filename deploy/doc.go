// Package deploy holds VRSky's deployment files, and the Go tests that
// check them: the Helm chart (helm/vrsky), the container image
// (docker/Dockerfile) and the Compose environment (compose/). The package
// itself has no code; its tests render the chart with Helm's Go SDK and
// decode every object strictly into the Kubernetes API types, and parse
// the Dockerfile and the Compose file.
//
// The tests import one package of ours, platform/provision/k8s: the Role
// the chart grants must be exactly its Rules(), and the NetworkPolicies
// must select its instances by the labels it puts on them. What else they
// compare against (the flags of vrsky serve, the NATS servers' operator
// block) they take from the vrsky binary itself, built once by TestMain,
// as a user's container would run it.
package deploy
