//go:build race

package host

// raceEnabled reports a build with the race detector.
const raceEnabled = true
