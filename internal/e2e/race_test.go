//go:build race

package e2e

// raceEnabled is set when the tests run with -race: the binary is built
// with it too.
const raceEnabled = true
