//go:build race

package esp

// The race detector instruments memory accesses with allocations of its own.
const raceEnabled = true
