//go:build !race

package room

// raceEnabled is true when the tests run with -race, which is several times
// slower: long property runs shrink to keep the suite quick.
const raceEnabled = false
