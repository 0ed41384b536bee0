package vault

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// HardenedOffset is added to an index to make it hardened (written i' or
// ih). SLIP-0010 Ed25519 derivation accepts hardened indices only.
const HardenedOffset uint32 = 1 << 31

// MaxPathDepth is the largest number of components a [Path] may have, the
// depth limit of BIP32.
const MaxPathDepth = 255

// alknetCoinType is the SLIP-0044 coin type reserved for alknet paths.
const alknetCoinType = 74

// MaxKeyVersion is the largest secret-key version: the version is a hardened
// path index, so it must stay below 2^31.
const MaxKeyVersion uint32 = HardenedOffset - 1

// Path is a BIP32/SLIP-0010 derivation path: the child index of each level
// below the master key, hardened indices including [HardenedOffset]. The
// empty path is the master key "m".
type Path []uint32

// NodeKeyPath returns m/74'/0'/0', the path of the node identity key.
func NodeKeyPath() Path {
	return Path{alknetCoinType + HardenedOffset, 0 + HardenedOffset, 0 + HardenedOffset}
}

// SecretKeyPath returns m/74'/2'/<version>', the path of the key from which
// the secret-sealing key of that version is derived (see [Vault.Seal]).
// It panics if version is greater than [MaxKeyVersion]; versions read from
// files and ciphertexts are checked before they get here.
func SecretKeyPath(version uint32) Path {
	if version > MaxKeyVersion {
		panic(fmt.Sprintf("vault: SecretKeyPath: key version %d > MaxKeyVersion", version))
	}
	return Path{alknetCoinType + HardenedOffset, 2 + HardenedOffset, version + HardenedOffset}
}

// ParsePath parses a path written as "m" followed by zero or more
// "/<index>'" components, for example "m", "m/0'" or "m/74'/0h/0'". Every
// component must be hardened, marked with ' or h; the index is a decimal
// number below 2^31 without sign or leading zeros. At most [MaxPathDepth]
// components are accepted.
func ParsePath(s string) (Path, error) {
	p, err := parsePath(s)
	if err != nil {
		return nil, fmt.Errorf("vault: parse path %q: %w", s, err)
	}
	return p, nil
}

func parsePath(s string) (Path, error) {
	rest, ok := strings.CutPrefix(s, "m")
	if !ok {
		return nil, errors.New(`path must start with "m"`)
	}
	if rest == "" {
		return Path{}, nil
	}
	if rest[0] != '/' {
		return nil, errors.New(`"m" must be followed by "/" or end the path`)
	}
	parts := strings.Split(rest[1:], "/")
	if len(parts) > MaxPathDepth {
		return nil, fmt.Errorf("%d components, at most %d allowed", len(parts), MaxPathDepth)
	}
	p := make(Path, 0, len(parts))
	for i, part := range parts {
		idx, err := parseComponent(part)
		if err != nil {
			return nil, fmt.Errorf("component %d %q: %w", i+1, part, err)
		}
		p = append(p, idx)
	}
	return p, nil
}

// parseComponent parses one hardened component such as "7'" or "7h" and
// returns its index with [HardenedOffset] added.
func parseComponent(c string) (uint32, error) {
	if c == "" {
		return 0, errors.New("empty component")
	}
	digits, ok := strings.CutSuffix(c, "'")
	if !ok {
		digits, ok = strings.CutSuffix(c, "h")
	}
	if !ok {
		return 0, errors.New("not hardened (append ' or h): Ed25519 derivation supports hardened indices only")
	}
	if digits == "" {
		return 0, errors.New("missing index")
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, errors.New("index is not a decimal number")
		}
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, errors.New("index has a leading zero")
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || uint32(n) >= HardenedOffset {
		return 0, fmt.Errorf("index out of range, must be below %d", HardenedOffset)
	}
	return uint32(n) + HardenedOffset, nil
}

// String returns p in the form ParsePath accepts, hardened components marked
// with ' ("m/74'/0'/0'"). A non-hardened component, which derivation
// rejects, is written without a marker.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString("m")
	for _, idx := range p {
		b.WriteByte('/')
		if idx >= HardenedOffset {
			b.WriteString(strconv.FormatUint(uint64(idx-HardenedOffset), 10))
			b.WriteByte('\'')
		} else {
			b.WriteString(strconv.FormatUint(uint64(idx), 10))
		}
	}
	return b.String()
}
