//go:build race

package main

// raceEnabled says whether this binary was built with -race.
const raceEnabled = true
