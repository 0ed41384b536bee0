package netem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The link emulator (issue 17 §1). The kernel here has no netem qdisc, so
// a path is emulated in user space: two network namespaces, A and B, each
// with a TUN device, and a forwarder process moving the IP packets
// between the two devices with a one-way delay, jitter, random and
// Gilbert-Elliott loss, a rate limit and a drop-tail queue ([StartLink]).
// A process in namespace A reaches B's address through the emulator and
// nothing else ([Link.Command], [Link.Do]). Before a profile's numbers
// count, [Link.Verify] proves that the emulator is not the bottleneck.

// Side names one end of a [Link].
type Side int

const (
	// SideA is the first namespace, at 198.18.0.1 (it owns 198.18.0.0/16).
	SideA Side = iota
	// SideB is the second namespace, at 198.19.0.1 (it owns 198.19.0.0/16).
	SideB
)

func (s Side) String() string {
	switch s {
	case SideA:
		return "a"
	case SideB:
		return "b"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

func (s Side) valid() bool { return s == SideA || s == SideB }

// The addresses of the two namespaces, from the benchmarking range of RFC
// 2544 (198.18.0.0/15), never routed outside them. Each side owns a /16,
// routed to the other side through the emulator, so a test can add more
// addresses of its side's prefix (a client changing address, say) with
// `ip addr add 198.18.0.2/32 dev alkemu` in that namespace.
var (
	linkPrefix = [2]netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("198.19.0.0/16")}
	linkAddr   = [2]netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.19.0.1")}
)

// LinkNSPrefix starts the name of every namespace the emulator creates:
// alkemu-PID-SEQ-a and alkemu-PID-SEQ-b.
const LinkNSPrefix = "alkemu-"

// linkDevice is the name of the TUN device in each namespace.
const linkDevice = "alkemu"

// A LinkProfile describes an emulated path. Delay, loss, rate and queue
// apply to each direction alike (a symmetric path).
type LinkProfile struct {
	// Name identifies the profile in reports.
	Name string
	// RTT is the round-trip time the emulator adds: each direction is
	// delayed by RTT/2 (plus the time to send the packet at RateBps).
	RTT time.Duration
	// jitter varies each packet's one-way delay uniformly within
	// ±Jitter; packets are never reordered (a packet drawn to overtake
	// its predecessor leaves right after it), so packets closer together
	// than the jitter lean towards its upper bound. At most RTT/2.
	jitter time.Duration
	// RateBps is the bottleneck rate in bits per second of IP packets
	// (headers included), each direction; 0 means no limit.
	RateBps int64
	// Loss is the probability that a packet is lost on the wire, each
	// direction, independently of the others; in [0, 1).
	Loss float64
	// GE, if set, adds bursty loss from a Gilbert-Elliott model, after
	// and independently of Loss.
	GE *GilbertElliott
	// QueueBytes is the drop-tail queue before the rate limit, in bytes
	// of IP packets; a packet that does not fit is dropped. 0 means one
	// bandwidth-delay product (RateBps × RTT), at least 64 packets of
	// MTU bytes. Unused when RateBps is 0.
	QueueBytes int
	// queuePackets, if positive, also limits the queue to that many
	// packets (the one being sent counts).
	queuePackets int
	// mtu of both TUN devices; 0 means 1500. In [576, 9000].
	mtu int
	// seed seeds the loss draws (each direction gets its own stream); 0
	// picks a random seed.
	seed uint64
}

// GilbertElliott is the two-state Markov loss model: the path is Good
// or Bad; before each packet it moves from Good to Bad with probability
// P and from Bad to Good with probability R, then loses the packet with
// probability LossGood or LossBad of its state. Bad periods last 1/R
// packets on average.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// meanLoss is the long-run fraction of packets the model loses.
func (g GilbertElliott) meanLoss() float64 {
	if g.P+g.R == 0 {
		return g.LossGood
	}
	bad := g.P / (g.P + g.R)
	return (1-bad)*g.LossGood + bad*g.LossBad
}

func (g GilbertElliott) validate() error {
	for _, v := range []float64{g.P, g.R, g.LossGood, g.LossBad} {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("gilbert-elliott: probabilities must be in [0, 1], got %+v", g)
		}
	}
	if g.R == 0 {
		return errors.New("gilbert-elliott: R is 0, the bad state would never end")
	}
	return nil
}

// MeanLoss is the long-run fraction of packets the profile loses in each
// direction, from Loss and GE together.
func (p LinkProfile) MeanLoss() float64 {
	keep := 1 - p.Loss
	if p.GE != nil {
		keep *= 1 - p.GE.meanLoss()
	}
	return 1 - keep
}

// bdp is the profile's bandwidth-delay product in bytes (0 without a rate).
func (p LinkProfile) bdp() int {
	return int(float64(p.RateBps) / 8 * p.RTT.Seconds())
}

// String is a short description, e.g. "40ms 200Mbit/s 1% loss".
func (p LinkProfile) String() string {
	s := fmt.Sprintf("%v RTT", p.RTT)
	if p.jitter > 0 {
		s += fmt.Sprintf(" ±%v", p.jitter)
	}
	if p.RateBps > 0 {
		s += fmt.Sprintf(", %g Mbit/s", float64(p.RateBps)/1e6)
	}
	switch {
	case p.GE != nil:
		s += fmt.Sprintf(", %.2g%% bursty loss", 100*p.MeanLoss())
	case p.Loss > 0:
		s += fmt.Sprintf(", %.2g%% random loss", 100*p.Loss)
	}
	return s
}

// withDefaults validates p and fills in its defaults.
func (p LinkProfile) withDefaults() (LinkProfile, error) {
	if p.mtu == 0 {
		p.mtu = 1500
	}
	switch {
	case p.mtu < 576 || p.mtu > 9000:
		return p, fmt.Errorf("link profile %q: MTU %d not in [576, 9000]", p.Name, p.mtu)
	case p.RTT < 0 || p.RTT > time.Minute:
		return p, fmt.Errorf("link profile %q: RTT %v not in [0, 1m]", p.Name, p.RTT)
	case p.jitter < 0 || p.jitter > p.RTT/2:
		return p, fmt.Errorf("link profile %q: jitter %v not in [0, RTT/2]", p.Name, p.jitter)
	case p.RateBps < 0:
		return p, fmt.Errorf("link profile %q: negative rate %d", p.Name, p.RateBps)
	case !(p.Loss >= 0 && p.Loss < 1):
		return p, fmt.Errorf("link profile %q: loss %v not in [0, 1)", p.Name, p.Loss)
	case p.QueueBytes < 0 || p.queuePackets < 0:
		return p, fmt.Errorf("link profile %q: negative queue limit", p.Name)
	}
	if p.GE != nil {
		if err := p.GE.validate(); err != nil {
			return p, fmt.Errorf("link profile %q: %w", p.Name, err)
		}
	}
	if p.RateBps > 0 && p.QueueBytes == 0 {
		p.QueueBytes = max(p.bdp(), 64*p.mtu)
	}
	if p.RateBps > 0 && p.QueueBytes < p.mtu {
		return p, fmt.Errorf("link profile %q: queue of %d bytes holds no packet of MTU %d", p.Name, p.QueueBytes, p.mtu)
	}
	return p, nil
}

// The profiles of issue 17.
var (
	profileLAN    = LinkProfile{Name: "lan", RTT: 500 * time.Microsecond, RateBps: 1e9}
	ProfileWAN    = LinkProfile{Name: "wan", RTT: 40 * time.Millisecond, RateBps: 200e6}
	profileFar    = LinkProfile{Name: "far", RTT: 150 * time.Millisecond, RateBps: 300e6}
	ProfileLossy  = LinkProfile{Name: "lossy", RTT: 60 * time.Millisecond, RateBps: 50e6, Loss: 0.01}
	profileBursty = LinkProfile{Name: "bursty", RTT: 60 * time.Millisecond, RateBps: 50e6,
		// Bad periods of 10 packets on average, half of them lost, 2 %
		// of the time: 1 % loss in bursts of about five.
		GE: &GilbertElliott{P: 0.02 * 0.1 / 0.98, R: 0.1, LossBad: 0.5}}
	// ProfileHeavyLoss loses more than quic-go's patched NewReno tolerates
	// (2 %, third_party/quic-go/ALKNET-PATCHES.md patch 3): a bad radio
	// link, where QUIC is loss-bound and transport choice moves to TCP+TLS.
	ProfileHeavyLoss = LinkProfile{Name: "heavyloss", RTT: 60 * time.Millisecond, RateBps: 50e6, Loss: 0.05}
)

// LinkProfiles returns the predefined profiles: issue 17's, then heavyloss.
func LinkProfiles() []LinkProfile {
	return []LinkProfile{profileLAN, ProfileWAN, profileFar, ProfileLossy, profileBursty, ProfileHeavyLoss}
}

// ParseLinkProfiles reads a comma-separated list of profile names.
func ParseLinkProfiles(s string) ([]LinkProfile, error) {
	var out []LinkProfile
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, p := range LinkProfiles() {
			if p.Name == name {
				out, found = append(out, p), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown link profile %q (want lan, wan, far, lossy, bursty, heavyloss)", name)
		}
	}
	return out, nil
}

// LinkStats counts what the emulator did, per direction.
type LinkStats struct {
	AToB, BToA DirectionStats
	// UDPRcvbufErrors is, for each side (indexed by Side), the datagrams
	// that arrived whole but that side's sockets dropped because the
	// receiving socket's buffer was full (Udp RcvbufErrors of its
	// /proc/net/snmp): the receiving process, not the path, fell behind.
	// A QUIC sender sees them as loss.
	UDPRcvbufErrors [2]int64
	// TxDropped is, for each side, the packets that side's TUN device
	// dropped because its queue to the emulator was full (the emulator
	// read too late): loss before the path, on the sending side.
	TxDropped [2]int64
}

// DirectionStats counts one direction's packets. Every packet read is
// either passed or dropped for exactly one cause.
type DirectionStats struct {
	// Read is packets read from the sending side's TUN device.
	Read int64
	// Passed and Bytes are the packets written to the other side and
	// their bytes.
	Passed, Bytes int64
	// Lost is packets dropped by the random loss; BurstLost by the
	// Gilbert-Elliott model; Queue by the full drop-tail queue.
	Lost, BurstLost, Queue int64
	// TooBig is packets over the MTU; Overflow is packets the emulator
	// had no buffer for (it, not the path, was the bottleneck);
	// WriteErrors is packets the receiving device refused.
	TooBig, Overflow, WriteErrors int64
	// LateSum is how long after their release time the packets were
	// written, summed; LateMax the longest. A forwarder that keeps up is
	// late by tens of microseconds.
	LateSum, LateMax time.Duration
}

// parseUDPRcvbufErrors finds Udp RcvbufErrors in the text of
// /proc/net/snmp: a header line naming the fields, then a line of values.
func parseUDPRcvbufErrors(snmp []byte) (int64, error) {
	var header []string
	for line := range strings.Lines(string(snmp)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i, name := range header {
			if name == "RcvbufErrors" && i < len(fields) {
				return strconv.ParseInt(fields[i], 10, 64)
			}
		}
		break
	}
	return 0, errors.New("no Udp RcvbufErrors in /proc/net/snmp")
}

// parseTxDropped finds stats64.tx.dropped in the JSON of `ip -j -s link
// show dev X`.
func parseTxDropped(js []byte) (int64, error) {
	var links []struct {
		Stats64 struct {
			TX struct {
				Dropped int64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(js, &links); err != nil {
		return 0, fmt.Errorf("ip -j -s link: %w", err)
	}
	if len(links) != 1 {
		return 0, fmt.Errorf("ip -j -s link: %d links, want 1", len(links))
	}
	return links[0].Stats64.TX.Dropped, nil
}

// MeanLate is LateSum over the packets written.
func (d DirectionStats) MeanLate() time.Duration {
	if n := d.Passed + d.WriteErrors; n > 0 {
		return d.LateSum / time.Duration(n)
	}
	return 0
}
