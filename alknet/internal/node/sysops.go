package node

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// sysInfo is sys/info's answer.
type sysInfo struct {
	Hostname  string  `json:"hostname"`
	NodeID    string  `json:"nodeId"`
	Uptime    float64 `json:"uptimeSeconds"`
	Version   string  `json:"version"`
	GoVersion string  `json:"goVersion"`
}

type echoIn struct {
	Message string `json:"message" jsonschema:"text to send back"`
}

type ticksIn struct {
	Count    int    `json:"count" jsonschema:"number of ticks, 1..1000"`
	Interval string `json:"interval,omitempty" jsonschema:"time between ticks, e.g. 100ms (default 1s)"`
}

// registerSysOps adds the demo service: small, real operations for trying
// calls and routing (sys/info, sys/echo, sys/ticks). Callers must be
// authenticated.
func registerSysOps(reg *call.Registry, id core.NodeID, version string) error {
	start := time.Now()
	if err := call.Register(reg, call.Spec{Name: "sys/info", ReplaySafe: true, Description: "hostname, NodeID, uptime and version of this node"},
		func(context.Context, *call.Request, struct{}) (sysInfo, error) {
			host, _ := os.Hostname()
			return sysInfo{Hostname: host, NodeID: id.String(), Uptime: time.Since(start).Seconds(), Version: version, GoVersion: runtime.Version()}, nil
		}); err != nil {
		return err
	}
	if err := call.Register(reg, call.Spec{Name: "sys/echo", Description: "returns its input and who called"},
		func(_ context.Context, req *call.Request, in echoIn) (map[string]string, error) {
			out := map[string]string{"message": in.Message, "node": id.String(), "caller": req.Caller.String()}
			if req.ForwardedFor != nil {
				out["forwardedFor"] = req.ForwardedFor.ID
			}
			return out, nil
		}); err != nil {
		return err
	}
	return call.RegisterStream(reg, call.Spec{Name: "sys/ticks", Description: "sends count ticks, one per interval"},
		func(ctx context.Context, _ *call.Request, in ticksIn, send func(map[string]any) error) error {
			if in.Count < 1 || in.Count > 1000 {
				return call.Errorf(call.CodeInvalidInput, "count %d: want 1..1000", in.Count)
			}
			every := time.Second
			if in.Interval != "" {
				d, err := time.ParseDuration(in.Interval)
				if err != nil || d < time.Millisecond {
					return call.Errorf(call.CodeInvalidInput, "interval %q: want a duration of at least 1ms", in.Interval)
				}
				every = d
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for i := 1; i <= in.Count; i++ {
				if err := send(map[string]any{"tick": i, "node": id.ShortString(), "at": time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
					return err
				}
				if i == in.Count {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("ticks: %w", ctx.Err())
				case <-t.C:
				}
			}
			return nil
		})
}
