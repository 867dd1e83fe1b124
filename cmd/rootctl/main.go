// Command rootctl asks rootd (or PCP's pmdaroot) about containers through
// the root socket, as any user rootd allows; run as root with --in-process
// it reads the engines itself, for debugging the daemon.
package main

import (
	"os"
)

func main() {
	a := newApp(os.Stdout, os.Stderr)
	os.Exit(a.run(os.Args[1:]))
}
