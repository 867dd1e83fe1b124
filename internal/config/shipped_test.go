package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/builtins"
	"github.com/rootd-project/rootd/internal/config"
)

// The file the packages install must parse as shipped (everything
// commented out), and every setting it shows commented out must be a real
// key of the program that reads it: uncommented, the file still parses
// for both programs. Which flags exist is checked by rootd and rootctl
// themselves (cmd/rootd, cmd/rootctl); here the keys' places are.
func TestShippedFile(t *testing.T) {
	data, err := os.ReadFile("../../packaging/rootd.conf")
	if err != nil {
		t.Fatal(err)
	}
	engines := config.EngineKeys(engine.Drivers())
	rootdKeys := map[string]string{}
	for _, k := range []string{"log-file", "log-level", "log-format", "metrics-address", "allow-uid", "allow-gid",
		"allow-exec", "pmcd-conf", "request-timeout", "read-timeout", "max-connections", "pmda"} {
		rootdKeys[k] = k
	}
	schemas := []config.Schema{
		{Program: "rootd", Others: []string{"rootctl"}, Top: map[string]string{"socket": "s", "engines": "engines"}, Section: rootdKeys, Engines: engines},
		{Program: "rootctl", Others: []string{"rootd"}, Top: map[string]string{"socket": "socket", "engines": "engines"},
			Section: map[string]string{"timeout": "timeout"}, Engines: engines},
	}
	setting := regexp.MustCompile(`(?m)^#([a-z][a-z-]* = )`)
	uncommented := setting.ReplaceAllString(string(data), "$1")
	if n := strings.Count(uncommented, "\n") - strings.Count(string(data), "\n"); n != 0 {
		t.Fatal("line count changed")
	}
	shown := len(setting.FindAllString(string(data), -1))
	if shown < 25 {
		t.Fatalf("only %d commented settings found; the pattern no longer matches the file", shown)
	}
	for _, s := range schemas {
		f, err := config.Parse("rootd.conf", string(data), s)
		if err != nil || len(f.Settings) != 0 {
			t.Errorf("%s: as shipped: %v, %d settings; want none", s.Program, err, len(f.Settings))
		}
		if _, err := config.Parse("rootd.conf (uncommented)", uncommented, s); err != nil {
			t.Errorf("%s: %v", s.Program, err)
		}
	}
	// Every engine compiled in has its section, and every one of its keys
	// is shown.
	for name, keys := range engines {
		if !strings.Contains(string(data), "\n["+name+"]\n") {
			t.Errorf("no [%s] section", name)
		}
		for k := range keys {
			if !regexp.MustCompile(`(?m)^\[` + name + `\]\n(?:[^\[].*\n|\n)*#` + regexp.QuoteMeta(k) + ` = `).Match(data) {
				t.Errorf("[%s] does not show %s", name, k)
			}
		}
	}
}
