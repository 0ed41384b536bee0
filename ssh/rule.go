package ssh

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/alkdev/alknet/core"
)

// Action is what a [Rule] does with a request it matches. The zero value is
// [Deny].
type Action uint8

// Actions.
const (
	// Deny refuses the request.
	Deny Action = iota
	// Allow admits the request.
	Allow
)

// String returns "allow" or "deny".
func (a Action) String() string {
	switch a {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Target is what a [Rule] matches: any destination, this host, a host name
// pattern or an address range, each with an optional port range. Build one
// with [ParseTarget]; the zero value matches nothing.
//
// Exactly one of Any, Self, Host and Prefix is set:
//   - Any matches every destination, but allows none of this host (see
//     below): "allow *" does not reach the node itself.
//   - Self matches every address of this host.
//   - Host matches the requested host name, compared case-insensitively and
//     without a trailing dot: an exact name ("db.internal") or a glob with
//     one "*" standing for any run of characters ("*.example.com" matches
//     "a.example.com" and "a.b.example.com" but not "example.com"). Host
//     rules see only the name the client asked for, never the addresses it
//     resolves to, so refuse address ranges with Prefix rules.
//   - Prefix matches every address the request resolves to (an IP literal,
//     or the host name resolved on the server).
//
// In forwarding rules ([Policy.Forward]) the addresses of this host are one
// class, named by Self: loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8
// and ::, which connect to the local host) and every address of the node's
// own interfaces. Such a destination is allowed only by a rule that names
// this host: Self, an address range inside the loopback or unspecified
// ranges (which stands for all of this host, so "deny 127.0.0.0/8" also
// denies 0.0.0.0, :: and the node's own addresses, and "allow
// 127.0.0.1:5432" also allows them on port 5432), one exact address of
// the node, or an exact host name. Any, host globs and wider ranges
// ("10.0.0.0/8" holding a node address, "0.0.0.0/0") deny this host but
// never allow it. Bind rules ([Policy.RemoteForward]) have no such class.
type Target struct {
	// Any matches every host and address.
	Any bool
	// Self matches this host.
	Self bool
	// Host is a lower-case host name or glob with at most one "*".
	Host string
	// Prefix is an address range; a single address is a /32 or /128.
	Prefix netip.Prefix
	// FirstPort and LastPort bound the ports matched, inclusive. Both zero
	// means every port.
	FirstPort, LastPort uint16
}

// Rule is one forwarding rule: requests matching Target, made by one of
// Principals, get Action. Rules are evaluated in order and the first match
// wins; see [Policy].
type Rule struct {
	// Action is what the rule does; the zero value is [Deny].
	Action Action
	// Target is what the rule matches.
	Target Target
	// Principals restricts the rule to identities whose ID equals one of
	// them or that hold one of them as a scope (see core.Identity.HasScope).
	// Empty means everyone.
	Principals []string
}

// maxHostLen bounds host names and host patterns (the DNS limit).
const maxHostLen = 253

// ParseRule parses a rule from its text form:
//
//	ACTION TARGET [principals=P1,P2,...]
//
// ACTION is "allow" or "deny"; TARGET is as [ParseTarget] reads it;
// principals lists identity IDs or scopes, comma-separated, without spaces.
// Fields are separated by spaces or tabs. Examples:
//
//	allow 10.0.0.0/8:80-443 principals=ops
//	allow *.internal.example.com:22
//	deny self
//	allow self:5432 principals=db-admin,ssh:forward-db
//	allow *
//
// [Rule.String] returns the same form, so a parsed rule prints back to text
// that parses to it again.
func ParseRule(s string) (Rule, error) {
	var r Rule
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return r, fmt.Errorf("ssh: rule %q: want \"allow|deny TARGET [principals=...]\"", core.Clip(s))
	}
	switch fields[0] {
	case "allow":
		r.Action = Allow
	case "deny":
		r.Action = Deny
	default:
		return r, fmt.Errorf("ssh: rule %q: action %q is not allow or deny", core.Clip(s), core.Clip(fields[0]))
	}
	t, err := ParseTarget(fields[1])
	if err != nil {
		return Rule{}, fmt.Errorf("ssh: rule %q: %w", core.Clip(s), unprefix(err))
	}
	r.Target = t
	seen := false
	for _, opt := range fields[2:] {
		k, v, _ := strings.Cut(opt, "=")
		if k != "principals" {
			return Rule{}, fmt.Errorf("ssh: rule %q: unknown option %q (known: principals=)", core.Clip(s), core.Clip(opt))
		}
		if seen {
			return Rule{}, fmt.Errorf("ssh: rule %q: principals given twice", core.Clip(s))
		}
		seen = true
		r.Principals = strings.Split(v, ",")
		if err := checkPrincipals(r.Principals); err != nil {
			return Rule{}, fmt.Errorf("ssh: rule %q: %w", core.Clip(s), err)
		}
	}
	return r, nil
}

// String returns the rule's text form, as [ParseRule] reads it.
func (r Rule) String() string {
	s := r.Action.String() + " " + r.Target.String()
	if len(r.Principals) > 0 {
		s += " principals=" + strings.Join(r.Principals, ",")
	}
	return s
}

// Validate reports what is wrong with a rule built by hand: an unknown
// action, a malformed target, or a malformed principal.
func (r Rule) Validate() error {
	var errs []error
	if r.Action != Allow && r.Action != Deny {
		errs = append(errs, fmt.Errorf("unknown action %d", r.Action))
	}
	if err := r.Target.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(r.Principals) > 0 {
		if err := checkPrincipals(r.Principals); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkPrincipals(ps []string) error {
	for _, p := range ps {
		if p == "" || len(p) > 128 || strings.ContainsFunc(p, func(r rune) bool {
			return r <= ' ' || r == 0x7f || r == ',' || r == '='
		}) {
			return fmt.Errorf("invalid principal %q (identity IDs or scopes, comma-separated, no spaces)", core.Clip(p))
		}
	}
	return nil
}

// ParseTarget parses a rule target:
//
//   - any host, any port
//     *:22                    any host, port 22
//     self:5432               this host (see [Target]), port 5432
//     db.internal:5432        one host name and port
//     *.example.com:8000-8999 a host glob (one "*") and a port range
//     10.0.0.0/8              an IPv4 range, any port
//     192.0.2.7:443           one address and port
//     fd00::/8                an IPv6 range (brackets needed with a port:
//     [fd00::/8]:80, [::1]:22)
//
// A port is a number from 1 to 65535, a range "first-last" (inclusive), or
// "*" for every port (as when the port is left out). IPv4-mapped IPv6
// addresses and zones are refused: write IPv4 ranges in IPv4 form.
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, errors.New("ssh: empty target")
	}
	host, ports, hasPort := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Target{}, fmt.Errorf("ssh: target %q: missing ]", core.Clip(s))
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return Target{}, fmt.Errorf("ssh: target %q: want [address]:port", core.Clip(s))
			}
			ports, hasPort = rest[1:], true
		}
		if !strings.Contains(host, ":") {
			return Target{}, fmt.Errorf("ssh: target %q: brackets are for IPv6 addresses", core.Clip(s))
		}
	case strings.Count(s, ":") > 1:
		// A bare IPv6 address or range, without a port.
	default:
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, ports, hasPort = s[:i], s[i+1:], true
		}
	}
	var t Target
	if hasPort && ports != "*" {
		first, last, err := parsePorts(ports)
		if err != nil {
			return Target{}, fmt.Errorf("ssh: target %q: %w", core.Clip(s), err)
		}
		t.FirstPort, t.LastPort = first, last
	}
	if !strings.Contains(host, "/") && !strings.HasPrefix(s, "[") {
		host = strings.ToLower(strings.TrimSuffix(host, "."))
	}
	switch {
	case host == "*":
		t.Any = true
	case host == "self" && !strings.HasPrefix(s, "["):
		t.Self = true
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return Target{}, fmt.Errorf("ssh: target %q: bad address range: %w", core.Clip(s), err)
		}
		t.Prefix = p.Masked()
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" {
				return Target{}, fmt.Errorf("ssh: target %q: addresses with a zone are not supported", core.Clip(s))
			}
			t.Prefix = netip.PrefixFrom(a, a.BitLen())
		} else if strings.Contains(host, ":") {
			return Target{}, fmt.Errorf("ssh: target %q: bad IPv6 address (put a port after [address])", core.Clip(s))
		} else {
			t.Host = host
		}
	}
	if err := t.Validate(); err != nil {
		return Target{}, fmt.Errorf("ssh: target %q: %w", core.Clip(s), err)
	}
	return t, nil
}

func parsePorts(s string) (first, last uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if first, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	last = first
	if isRange {
		if last, err = parsePort(b); err != nil {
			return 0, 0, err
		}
		if last < first {
			return 0, 0, fmt.Errorf("port range %q runs backwards", core.Clip(s))
		}
	}
	return first, last, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad port %q (want 1-65535, a range a-b, or *)", core.Clip(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q (want 1-65535, a range a-b, or *)", core.Clip(s))
	}
	return uint16(n), nil
}

// Validate reports what is wrong with a target built by hand.
func (t Target) Validate() error {
	n := 0
	if t.Any {
		n++
	}
	if t.Self {
		n++
	}
	if t.Host != "" {
		n++
		if t.Host == "*" {
			return errors.New(`host pattern "*": set Any instead`)
		}
		if t.Host == "self" {
			return errors.New(`host pattern "self": set Self instead`)
		}
		if _, err := netip.ParseAddr(t.Host); err == nil {
			return fmt.Errorf("host pattern %q is an address: set Prefix instead", t.Host)
		}
		if err := checkHostPattern(t.Host); err != nil {
			return err
		}
	}
	if t.Prefix.IsValid() {
		n++
		a := t.Prefix.Addr()
		if a.Is4In6() {
			return errors.New("IPv4-mapped IPv6 ranges are not supported; write the IPv4 range")
		}
		if a.Zone() != "" {
			return errors.New("address ranges with a zone are not supported")
		}
		if t.Prefix != t.Prefix.Masked() {
			return fmt.Errorf("address range %s has host bits set", t.Prefix)
		}
	}
	if n != 1 {
		return errors.New("a target is exactly one of any (*), self, a host pattern, or an address range")
	}
	if (t.FirstPort == 0) != (t.LastPort == 0) || t.LastPort < t.FirstPort {
		return fmt.Errorf("bad port range %d-%d", t.FirstPort, t.LastPort)
	}
	return nil
}

// checkHostPattern accepts lower-case DNS-ish names with at most one "*".
func checkHostPattern(h string) error {
	if h == "" || len(h) > maxHostLen {
		return fmt.Errorf("host pattern %q: want 1 to %d characters", core.Clip(h), maxHostLen)
	}
	if strings.Count(h, "*") > 1 {
		return fmt.Errorf("host pattern %q: at most one *", core.Clip(h))
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' || r == '*') {
			return fmt.Errorf("host pattern %q: only letters, digits, '-', '.', '_' and one '*'", core.Clip(h))
		}
	}
	if strings.HasSuffix(h, ".") || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return fmt.Errorf("host pattern %q: empty label", core.Clip(h))
	}
	return nil
}

// String returns the target's text form, as [ParseTarget] reads it.
func (t Target) String() string {
	var host string
	bracket := false
	switch {
	case t.Any:
		host = "*"
	case t.Self:
		host = "self"
	case t.Host != "":
		host = t.Host
	case t.Prefix.IsValid():
		if t.Prefix.IsSingleIP() {
			host = t.Prefix.Addr().String()
		} else {
			host = t.Prefix.String()
		}
		bracket = t.Prefix.Addr().Is6()
	default:
		return "<invalid>"
	}
	if t.FirstPort == 0 {
		return host
	}
	if bracket {
		host = "[" + host + "]"
	}
	ports := strconv.Itoa(int(t.FirstPort))
	if t.LastPort != t.FirstPort {
		ports += "-" + strconv.Itoa(int(t.LastPort))
	}
	return host + ":" + ports
}

// matchHost reports whether a host rule or Any matches name; name is
// normalised (lower case, no trailing dot).
func (t Target) matchName(name string) bool {
	if t.Host == "" || name == "" {
		return false
	}
	prefix, suffix, glob := strings.Cut(t.Host, "*")
	if !glob {
		return name == t.Host
	}
	return len(name) >= len(prefix)+len(suffix) && strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix)
}

// matchPort reports whether port is in the target's range; port 0 (a
// remote forward letting the server choose) only matches "every port".
func (t Target) matchPort(port uint16) bool {
	if t.FirstPort == 0 {
		return true
	}
	return port >= t.FirstPort && port <= t.LastPort
}

// match reports whether the target covers one resolved destination, for a
// rule doing act. self tells whether addr is of this host, in forwarding
// rules; it is always false in bind rules, where Self matches nothing.
func (t Target) match(name string, addr netip.Addr, port uint16, self bool, act Action) bool {
	if !t.matchPort(port) {
		return false
	}
	// Only a target naming this host allows it; any target denies it.
	naming := true
	switch {
	case t.Any:
		naming = false
	case t.Self:
		return self
	case t.Host != "":
		if !t.matchName(name) {
			return false
		}
		naming = !strings.Contains(t.Host, "*")
	case t.Prefix.IsValid():
		if self && namesThisHost(t.Prefix) {
			return true
		}
		if !addr.IsValid() || !t.Prefix.Contains(addr) {
			return false
		}
		naming = t.Prefix.IsSingleIP()
	default:
		return false
	}
	return !self || naming || act != Allow
}

// matchPrincipal reports whether the rule applies to id.
func (r Rule) matchPrincipal(id *core.Identity) bool {
	if len(r.Principals) == 0 {
		return true
	}
	if id == nil {
		return false
	}
	return slices.ContainsFunc(r.Principals, func(p string) bool { return p == id.ID || id.HasScope(p) })
}

// decide evaluates rules for a request to name (normalised; for an IP
// literal, its text) resolving to addrs, on port, by id. Every address is
// judged on its own, first match wins, and an address no rule matches gets
// fallback(addr); the request is allowed only if every address is. With no
// addresses it is denied. thisHost, when not nil, tells the addresses of
// this host (forwarding rules); nil judges without that class (bind rules).
func decide(rules []Rule, name string, addrs []netip.Addr, port uint16, id *core.Identity, fallback func(netip.Addr) Action, thisHost func(netip.Addr) bool) Action {
	if len(addrs) == 0 {
		return Deny
	}
	for _, a := range addrs {
		a = normAddr(a)
		self := thisHost != nil && thisHost(a)
		act := fallback(a)
		for _, r := range rules {
			if r.Target.match(name, a, port, self, r.Action) && r.matchPrincipal(id) {
				act = r.Action
				break
			}
		}
		if act != Allow {
			return Deny
		}
	}
	return Allow
}

// normAddr drops zones and IPv4-in-IPv6 mapping so ranges match what the
// address really is.
func normAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// normHost lower-cases a requested host name and drops one trailing dot.
func normHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

func denyAll(netip.Addr) Action { return Deny }

// loopbackOnly is the remote-forward default: loopback binds are allowed.
func loopbackOnly(a netip.Addr) Action {
	if a.IsLoopback() {
		return Allow
	}
	return Deny
}

// unprefix drops the module prefix from a nested error so it appears once.
func unprefix(err error) error {
	if s, ok := strings.CutPrefix(err.Error(), "ssh: "); ok {
		return errors.New(s)
	}
	return err
}
