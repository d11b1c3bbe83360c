//go:build race

package wire_test

// raceEnabled is set under -race, whose instrumentation adds allocations
// that the allocation tests do not count.
const raceEnabled = true
