package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionReport(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/alkdev/alknet/alknet", Version: "v0.3.0"},
		Deps: []*debug.Module{
			{Path: "github.com/alkdev/alknet/core", Version: "v0.2.1"},
			{Path: "github.com/quic-go/quic-go", Version: "v0.65.0"},
			{Path: "github.com/alkdev/alknet/call", Version: "v0.0.0", Replace: &debug.Module{Path: "../call"}},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}},
	}
	got := versionReport(bi)
	for _, want := range []string{"alknet v0.3.0\n", "  core       v0.2.1\n", "  call       v0.0.0 => ../call\n", "go 1.26.8 ", "commit abc123 (modified)\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quic-go") {
		t.Errorf("report lists a module that is not alknet's:\n%s", got)
	}
}
