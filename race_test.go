//go:build race

package webanksign

// raceEnabled is whether the tests run with the race detector, under which
// sync.Pool drops items on purpose, so that allocations cannot be counted.
const raceEnabled = true
