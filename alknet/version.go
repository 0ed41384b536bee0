package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// modulePrefix is the path prefix of alknet's own modules.
const modulePrefix = "github.com/alkdev/alknet/"

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print the version of alknet and of each alknet module in this binary",
	Description: "Prints the binary's version, then every alknet module compiled in with its version\n" +
		"(\"(devel)\" or a replaced directory for a build from a checkout), the Go version and\n" +
		"the VCS commit the binary was built from.",
	Action: func(c *cli.Context) error {
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return fmt.Errorf("no build information in this binary")
		}
		fmt.Fprint(c.App.Writer, versionReport(bi))
		return nil
	},
}

// versionReport formats the build information of an alknet binary.
func versionReport(bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "alknet %s\n", moduleVersion(&bi.Main))
	for _, m := range bi.Deps {
		if strings.HasPrefix(m.Path, modulePrefix) {
			fmt.Fprintf(&b, "  %-10s %s\n", strings.TrimPrefix(m.Path, modulePrefix), moduleVersion(m))
		}
	}
	fmt.Fprintf(&b, "go %s %s/%s\n", strings.TrimPrefix(bi.GoVersion, "go"), runtime.GOOS, runtime.GOARCH)
	commit, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		commit += " (modified)"
	}
	fmt.Fprintf(&b, "commit %s\n", commit)
	return b.String()
}

// moduleVersion is m's version, or where a replace directive took it from.
func moduleVersion(m *debug.Module) string {
	if m.Replace != nil {
		if m.Replace.Version != "" {
			return m.Replace.Version
		}
		return m.Version + " => " + m.Replace.Path
	}
	if m.Version == "" {
		return "(devel)"
	}
	return m.Version
}

// version is the alknet module's version, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
