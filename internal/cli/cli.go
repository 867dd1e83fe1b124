// Package cli holds what rootd's two programs share: flag types, logging
// setup and the list parsing of --allow-uid and friends.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strconv"
	"strings"
)

// List is a flag that may be repeated and also takes comma-separated values.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Repeatable marks the flag as a list for internal/config: a TOML array
// gives each element to Set.
func (l *List) Repeatable() {}

// Set appends the comma-separated values of one flag occurrence.
func (l *List) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// UIDs resolves user names or numbers.
func UIDs(names []string) (map[uint32]bool, error) {
	return ids(names, func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}

// GIDs resolves group names or numbers.
func GIDs(names []string) (map[uint32]bool, error) {
	return ids(names, func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

func ids(names []string, lookup func(string) (string, error)) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	for _, n := range names {
		s := n
		if _, err := strconv.ParseUint(n, 10, 32); err != nil {
			if s, err = lookup(n); err != nil {
				return nil, fmt.Errorf("unknown user or group %q", n)
			}
		}
		id, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad id %q for %q", s, n)
		}
		out[uint32(id)] = true
	}
	return out, nil
}

// Logger builds the slog logger for a level name and a format, "text"
// (slog's key=value lines) or "json" (one JSON object a line), writing to w.
func Logger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad log level %q (debug, info, warn, error)", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad log format %q (text, json)", format)
}
