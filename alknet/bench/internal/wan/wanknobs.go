package wan

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/quic-go/quic-go"
)

// quic-go's flow-control and packet-size knobs on emulated paths (issue
// 17 §2): bare quic-go with each variant of quic.Config on both ends,
// interleaved round by round so that every variant sees the same link.

// profileSat is a path whose bandwidth-delay product (11 MB) exceeds
// quic-go's default stream receive window (6 MiB): 600 ms, 150 Mbit/s,
// like a geostationary satellite link. It is not among LinkProfiles (the
// kernel's default TCP send buffer cannot fill it, so it would not
// verify); the knob comparison uses it directly.
var profileSat = netem.LinkProfile{Name: "sat", RTT: 600 * time.Millisecond, RateBps: 150e6}

// A QUICKnob is one quic.Config variant.
type quicKnob struct {
	name   string
	config quic.Config
}

// quicKnobs are the variants measured: quic-go's defaults (receive
// windows 512 KiB growing to 6 MiB per stream and 15 MiB per connection,
// first packets of 1280 bytes then path MTU discovery), the larger
// windows core sets (core.QUICMaxStreamReceiveWindow), larger still,
// bigger initial windows on top, a first packet at the Ethernet size,
// and no MTU discovery.
func quicKnobs() []quicKnob {
	return []quicKnob{
		{name: "default"},
		{name: "windows-16m-24m", config: quic.Config{MaxStreamReceiveWindow: 16 << 20, MaxConnectionReceiveWindow: 24 << 20}},
		{name: "windows-32m-48m", config: quic.Config{MaxStreamReceiveWindow: 32 << 20, MaxConnectionReceiveWindow: 48 << 20}},
		{name: "initial-2m-3m", config: quic.Config{
			MaxStreamReceiveWindow: 16 << 20, MaxConnectionReceiveWindow: 24 << 20,
			InitialStreamReceiveWindow: 2 << 20, InitialConnectionReceiveWindow: 3 << 20}},
		{name: "packet-1452", config: quic.Config{InitialPacketSize: 1452}},
		{name: "no-pmtud", config: quic.Config{DisablePathMTUDiscovery: true}},
	}
}

// quicKnobResult is one variant's rates over the rounds, bytes per
// second: a download on a fresh connection and an upload.
type quicKnobResult struct {
	name     string
	down, up []float64
}

// measureQUICKnobs runs, rounds times, every knob in turn: a download of
// bytes on a fresh connection, then an upload of bytes on another, with
// that knob's config on both ends of bare quic-go (server in B, client in
// A).
func measureQUICKnobs(ctx context.Context, l *netem.Link, knobs []quicKnob, bytes int64, rounds int) ([]quicKnobResult, error) {
	res := make([]quicKnobResult, len(knobs))
	for i, k := range knobs {
		res[i].name = k.name
	}
	for range rounds {
		for i, k := range knobs {
			down, up, err := measureKnob(ctx, l, k.config, bytes)
			if err != nil {
				return res, fmt.Errorf("bench: knob %s: %w", k.name, err)
			}
			res[i].down = append(res[i].down, down)
			res[i].up = append(res[i].up, up)
		}
	}
	return res, nil
}

// measureKnob is one round of one knob: the download and the upload, each
// on a connection of its own.
func measureKnob(ctx context.Context, l *netem.Link, conf quic.Config, bytes int64) (down, up float64, err error) {
	dial, stop, err := startSwitchPair(ctx, l, "alknet-bench/knobs", &conf)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	for _, op := range []byte{'d', 'u'} {
		c, err := dial()
		if err != nil {
			return 0, 0, fmt.Errorf("dial: %w", err)
		}
		rate, err := switchTransfer(ctx, c, op, bytes)
		_ = c.CloseWithError(0, "")
		if err != nil {
			return 0, 0, err
		}
		if op == 'd' {
			down = rate
		} else {
			up = rate
		}
	}
	return down, up, nil
}

// QUICKnobTransfers are the knobs as wan-scenario transfers, one
// measurement per link: each variant's median download and upload.
func QUICKnobTransfers(bytes int64, rounds int) []WANTransfer {
	knobs := quicKnobs()
	measure := oncePerLink(func(ctx context.Context, l *netem.Link) ([]quicKnobResult, error) {
		return measureQUICKnobs(ctx, l, knobs, bytes, rounds)
	})
	var ts []WANTransfer
	for i, k := range knobs {
		ts = append(ts,
			WANTransfer{name: "quic-knob-" + k.name + "-down", run: func(ctx context.Context, l *netem.Link) (float64, error) {
				r, err := measure(ctx, l)
				if err != nil {
					return 0, err
				}
				return median(r[i].down), nil
			}},
			WANTransfer{name: "quic-knob-" + k.name + "-up", run: func(ctx context.Context, l *netem.Link) (float64, error) {
				r, err := measure(ctx, l)
				if err != nil {
					return 0, err
				}
				return median(r[i].up), nil
			}})
	}
	return ts
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
