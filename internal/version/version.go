// Package version says which build of rootd is running. The build (the
// Makefile) stamps the three variables with -ldflags -X; a plain 'go build'
// falls back to what the Go toolchain recorded about the checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

// Stamped by the Makefile: the release (VERSION file), the commit and the
// commit's time as seconds since the epoch (SOURCE_DATE_EPOCH).
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// Info is what a binary knows about its own build.
type Info struct {
	Version string
	Commit  string
	Date    time.Time // the commit's time, not the build's: builds are reproducible
	Go      string
}

// Get returns the stamped values, or the toolchain's VCS record where the
// build stamped nothing.
func Get() Info {
	in := Info{Version: Version, Commit: Commit, Go: runtime.Version()}
	if sec, err := strconv.ParseInt(Date, 10, 64); err == nil {
		in.Date = time.Unix(sec, 0).UTC()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && in.Commit == "":
				in.Commit = s.Value
			case s.Key == "vcs.time" && in.Date.IsZero():
				in.Date, _ = time.Parse(time.RFC3339, s.Value)
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// String is the one line --version prints, e.g.
// "rootd 0.4.0 (commit 0123abcd…, 2026-12-04T06:00:00Z, go1.26.8)".
func (in Info) String(program string) string {
	date := "unknown date"
	if !in.Date.IsZero() {
		date = in.Date.Format(time.RFC3339)
	}
	return fmt.Sprintf("%s %s (commit %s, %s, %s)", program, in.Version, in.Commit, date, in.Go)
}
