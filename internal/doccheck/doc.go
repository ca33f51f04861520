// Package doccheck holds the tests that keep VRSky's Markdown documentation
// honest: every relative link in the README, docs/ and the other user-facing
// pages resolves to a file (and heading) inside the repository, and no page
// sends a reader outside it for something the repository should say itself.
// It has no code of its own; see doccheck_test.go.
package doccheck
