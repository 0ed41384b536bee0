package main

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
)

// service is one protocol a node can run.
type service struct {
	name    string
	handler core.Handler
}

// services lists, in order, every service this build of alknet runs. Each
// protocol module adds its constructor here when it lands.
func services(logger *slog.Logger) []service {
	return []service{
		{"perf", perf.New(perf.Config{Logger: logger})},
	}
}

// enabledHandlers returns the handlers of the services not disabled, and an
// error naming any unknown service in disable.
func enabledHandlers(all []service, disable []string) ([]core.Handler, error) {
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	for _, d := range disable {
		if !slices.Contains(names, d) {
			return nil, fmt.Errorf("services.disable: unknown service %q (known: %v)", d, names)
		}
	}
	var hs []core.Handler
	for _, s := range all {
		if !slices.Contains(disable, s.name) {
			hs = append(hs, s.handler)
		}
	}
	return hs, nil
}
