// Package lib holds types the fixture's config reaches across packages.
package lib

import "time"

// Duration is written as a string such as "10s".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// Base holds sections every app has.
type Base struct {
	// Server is the [server] section. Static: a change needs a restart.
	Server Server `toml:"server"`
	// Users are the [[users]] entries. Dynamic: hot-reloaded.
	Users []User `toml:"users"`
}

// Server is the [server] section: where the app listens.
type Server struct {
	// Addr is the host:port to listen on. Default "[::]:80".
	Addr string `toml:"addr"`
	// Timeout bounds a request. Default 5s; negative: none.
	Timeout Duration `toml:"timeout"`
	// internal is not a key.
	internal int
}

// User is one [[users]] entry.
type User struct {
	// Name is the user's name; required.
	Name string `toml:"name"`
	// Admin is true for administrators. Default true (when nil).
	Admin *bool `toml:"admin,omitempty"`
	// Since is when the user was added.
	Since time.Time `toml:"since"`
}
