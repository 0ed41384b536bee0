package main

import (
	"example.com/fix/lib"
)

// config is the whole file.
type config struct {
	lib.Base
	// Store is the [store] section. Static; rules are dynamic.
	Store store `toml:"store"`
	// Ignored is not in the file.
	Ignored string `toml:"-"`
}

// store is the [store] section: where data lives; see docs/store.md.
type store struct {
	// Dir holds the data; it must exist when ReadOnly is set. Default
	// "<data-dir>/store".
	Dir string `toml:"dir"`
	// ReadOnly refuses writes.
	ReadOnly bool `toml:"read_only"`
	// Labels are free-form key-value pairs.
	Labels map[string]string `toml:"labels"`
	// MaxBytes bounds the store. Default 1024 (1 KiB).
	MaxBytes int64 `toml:"max_bytes"`
	// Default is the rule of names not in Rules. Dynamic: hot-reloaded.
	Default rule `toml:"default"`
	// Rules are rules by name.
	Rules map[string]rule `toml:"rules"`
}

// rule is an access rule.
type rule struct {
	// Public allows anonymous reads. Default false.
	Public bool `toml:"public"`
	// Tags are matched against [lib.User] names; a "*" matches all.
	Tags []string `toml:"tags"`
}
