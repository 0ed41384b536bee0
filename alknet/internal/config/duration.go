package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in the file as a Go duration string
// such as "10s" or "1m30s"; a bare number is an error, not nanoseconds.
// Negative values decode; the field holding a Duration says whether they are
// valid.
type Duration struct {
	time.Duration `toml:"-"`
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with time.ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%w (want a duration such as \"10s\" or \"1m30s\")", err)
	}
	d.Duration = v
	return nil
}
