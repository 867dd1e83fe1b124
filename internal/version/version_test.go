package version

import (
	"strings"
	"testing"
	"time"
)

func TestString(t *testing.T) {
	tests := []struct {
		name string
		in   Info
		want string
	}{
		{"stamped", Info{Version: "0.4.0", Commit: "abc123", Date: time.Unix(1764835200, 0).UTC(), Go: "go1.27.3"},
			"rootd 0.4.0 (commit abc123, 2025-12-04T08:00:00Z, go1.27.3)"},
		{"no date", Info{Version: "devel", Commit: "unknown", Go: "go1.27.3"},
			"rootd devel (commit unknown, unknown date, go1.27.3)"},
	}
	for _, tc := range tests {
		if got := tc.in.String("rootd"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestGetStamped(t *testing.T) {
	defer func(v, c, d string) { Version, Commit, Date = v, c, d }(Version, Commit, Date)
	Version, Commit, Date = "1.2.3", "deadbeef", "1764835200"
	in := Get()
	if in.Version != "1.2.3" || in.Commit != "deadbeef" || !in.Date.Equal(time.Unix(1764835200, 0)) {
		t.Fatalf("Get = %+v", in)
	}
	if !strings.HasPrefix(in.Go, "go") {
		t.Errorf("Go = %q", in.Go)
	}
}
