package vault

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	const h = HardenedOffset
	tests := []struct {
		in   string
		want Path
		str  string // canonical String form
	}{
		{"m", Path{}, "m"},
		{"m/0'", Path{h}, "m/0'"},
		{"m/0'/1h", Path{h, 1 + h}, "m/0'/1'"},
		{"m/74'/0'/0'", NodeKeyPath(), "m/74'/0'/0'"},
		{"m/74h/2h/7h", SecretKeyPath(7), "m/74'/2'/7'"},
		{"m/2147483647'", Path{h + (h - 1)}, "m/2147483647'"},
		{"m/0'/2147483647'/1'/2147483646'/2'", Path{h, h + (h - 1), 1 + h, h + (h - 2), 2 + h}, "m/0'/2147483647'/1'/2147483646'/2'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if err != nil {
				t.Fatalf("ParsePath(%q) error: %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParsePath(%q) = %v, want %v", tt.in, []uint32(got), []uint32(tt.want))
			}
			if s := got.String(); s != tt.str {
				t.Errorf("ParsePath(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"", `start with "m"`},
		{"M", `start with "m"`},
		{"/0'", `start with "m"`},
		{"m/", "empty component"},
		{"m0'", `followed by "/"`},
		{"mm", `followed by "/"`},
		{"m//0'", "empty component"},
		{"m/0'/", "empty component"},
		{"m/0", "not hardened"},
		{"m/0'/1", "not hardened"},
		{"m/1H", "not hardened"},
		{"m/'", "missing index"},
		{"m/h", "missing index"},
		{"m/1''", "not a decimal"},
		{"m/-1'", "not a decimal"},
		{"m/+1'", "not a decimal"},
		{"m/ 1'", "not a decimal"},
		{"m/0x1'", "not a decimal"},
		{"m/01'", "leading zero"},
		{"m/2147483648'", "out of range"},
		{"m/4294967296'", "out of range"},
		{"m/99999999999999999999'", "out of range"},
		{"m" + strings.Repeat("/0'", MaxPathDepth+1), "at most 255"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 24 {
			name = name[:24] + "..."
		}
		t.Run(name, func(t *testing.T) {
			p, err := ParsePath(tt.in)
			if err == nil {
				t.Fatalf("ParsePath(%q) = %v, want error containing %q", tt.in, p, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vault: parse path ") {
				t.Errorf("ParsePath(%q) error = %q, want prefix \"vault: parse path\" and %q", tt.in, err, tt.wantErr)
			}
		})
	}
	if _, err := ParsePath("m" + strings.Repeat("/0'", MaxPathDepth)); err != nil {
		t.Errorf("ParsePath at MaxPathDepth: %v", err)
	}
}

func TestPathStringNonHardened(t *testing.T) {
	if got, want := (Path{HardenedOffset + 44, 60, 0}).String(), "m/44'/60/0"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestSecretKeyPath(t *testing.T) {
	if got, want := SecretKeyPath(0).String(), "m/74'/2'/0'"; got != want {
		t.Errorf("SecretKeyPath(0) = %s, want %s", got, want)
	}
	if got, want := SecretKeyPath(MaxKeyVersion).String(), "m/74'/2'/2147483647'"; got != want {
		t.Errorf("SecretKeyPath(MaxKeyVersion) = %s, want %s", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("SecretKeyPath(MaxKeyVersion+1) did not panic")
		}
	}()
	SecretKeyPath(MaxKeyVersion + 1)
}

func FuzzParsePath(f *testing.F) {
	f.Add("m")                  // master
	f.Add("m/74'/0'/0'")        // node key path
	f.Add("m/0h/2147483647h")   // h marker, largest index
	f.Add("m/2147483648'")      // index one past the range
	f.Add("m/0")                // not hardened
	f.Add("m/01'")              // leading zero
	f.Add("m//'")               // empty components
	f.Add("m/99999999999999'/") // overflow and trailing slash
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		// A parsed path prints in a form that parses to the same path.
		q, err := ParsePath(p.String())
		if err != nil || !slices.Equal(p, q) {
			t.Fatalf("ParsePath(%q) = %v; reparse of %q = %v, %v", s, p, p.String(), q, err)
		}
	})
}
