// Command mkpkg builds rootd's .deb and .rpm with nfpm used as a library
// (pinned in this module's go.mod, so no downloaded binary is involved):
//
//	go run ./cmd/mkpkg -C .. -format deb -o bin/ -version 0.4.0
//
// It reads packaging/nfpm.yaml, adds every unit and drop-in found in dist/ by
// path, and writes one package per -format. File times are
// SOURCE_DATE_EPOCH's, so one commit packs to the same bytes.
//
// dist/*.service name the binary /usr/local/sbin/rootd (a hand install); the
// packaged copies name /usr/sbin/rootd, where the package puts it. Nothing
// else in them is changed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

func main() {
	dir := flag.String("C", ".", "repository root (paths in the config are relative to it)")
	config := flag.String("config", "packaging/nfpm.yaml", "nfpm configuration")
	formats := flag.String("format", "deb,rpm", "comma-separated package formats")
	out := flag.String("o", "bin", "output directory")
	version := flag.String("version", "", "package version (default: the VERSION file)")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH of the binaries")
	stage := flag.String("stage", "bin/pkgroot", "staging directory for generated files (man pages, rewritten units)")
	flag.Parse()
	if err := os.Chdir(*dir); err != nil {
		fail(err)
	}
	if *version == "" {
		b, err := os.ReadFile("VERSION")
		if err != nil {
			fail(err)
		}
		*version = strings.TrimSpace(string(b))
	}
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		fail(fmt.Errorf("SOURCE_DATE_EPOCH is not set (the Makefile sets it from git)"))
	}
	env := map[string]string{"VERSION": *version, "ARCH": *arch, "STAGE": *stage}
	// nfpm expands variables in a few fields only; expand the whole file,
	// with these variables and no others (the environment is not consulted).
	text, err := os.ReadFile(*config)
	if err != nil {
		fail(err)
	}
	expanded := os.Expand(string(text), func(k string) string {
		v, ok := env[k]
		if !ok {
			fail(fmt.Errorf("%s: unknown variable ${%s}", *config, k))
		}
		return v
	})
	cfg, err := nfpm.Parse(strings.NewReader(expanded))
	if err != nil {
		fail(err)
	}
	units, err := distContents(*stage)
	if err != nil {
		fail(err)
	}
	cfg.Contents = append(cfg.Contents, units...)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	for _, format := range strings.Split(*formats, ",") {
		info, err := cfg.Get(format)
		if err != nil {
			fail(err)
		}
		info = nfpm.WithDefaults(info)
		if err := nfpm.PrepareForPackager(info, format); err != nil {
			fail(fmt.Errorf("%s: %w", format, err))
		}
		pkgr, err := nfpm.Get(format)
		if err != nil {
			fail(err)
		}
		target := filepath.Join(*out, pkgr.ConventionalFileName(info))
		var buf bytes.Buffer
		info.Target = target
		if err := pkgr.Package(info, &buf); err != nil {
			fail(fmt.Errorf("%s: %w", format, err))
		}
		if err := os.WriteFile(target, buf.Bytes(), 0o644); err != nil {
			fail(err)
		}
		fmt.Println("mkpkg:", target)
	}
}

// distContents stages dist/'s systemd files and says where each goes:
// dist/NAME.service -> the system unit directory; the drop-ins
// dist/pmcd.service.d/* and dist/rootd.service.d/* -> /usr/share/rootd/
// (installed into /etc only by rootd-switch enable: the package itself never
// changes how pmcd runs).
func distContents(stage string) (files.Contents, error) {
	var out files.Contents
	var paths []string
	err := filepath.WalkDir("dist", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel("dist", p)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		data = bytes.ReplaceAll(data, []byte("/usr/local/sbin/rootd"), []byte("/usr/sbin/rootd"))
		staged := filepath.Join(stage, "dist", rel)
		if err := os.MkdirAll(filepath.Dir(staged), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(staged, data, 0o644); err != nil {
			return nil, err
		}
		info := &files.ContentFileInfo{Mode: 0o644}
		switch {
		case !strings.Contains(rel, "/") && (strings.HasSuffix(rel, ".service") || strings.HasSuffix(rel, ".socket") || strings.HasSuffix(rel, ".timer")):
			out = append(out,
				&files.Content{Source: staged, Destination: "/lib/systemd/system/" + rel, Packager: "deb", FileInfo: info},
				&files.Content{Source: staged, Destination: "/usr/lib/systemd/system/" + rel, Packager: "rpm", FileInfo: info})
		case strings.HasPrefix(rel, "pmcd.service.d/") || strings.HasPrefix(rel, "rootd.service.d/"):
			out = append(out, &files.Content{Source: staged, Destination: "/usr/share/rootd/" + rel, FileInfo: info})
		default:
			return nil, fmt.Errorf("dist/%s: no rule says where it goes in the package (see packaging/cmd/mkpkg)", rel)
		}
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkpkg:", err)
	os.Exit(1)
}
