//go:build !race

package webanksign

// raceEnabled: see race_test.go.
const raceEnabled = false
