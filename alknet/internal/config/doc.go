// Package config reads and edits a node's configuration file, alknet.toml.
//
// It holds the schema of the core sections ([Core]: node, limits, tls,
// services, peers, tokens), strict decoding whose errors name the file, line
// and field ([Decode], [Load]), conversion to core types ([Core.Directory],
// [Core.EndpointLimits]), text edits that keep the operator's comments
// ([AppendPeer], [AppendToken]) and a [Reloader] that re-reads the file on
// change or SIGHUP.
//
// Protocol modules' sections are not declared here: the CLI composes its own
// top-level struct that embeds Core and adds them, and decodes it with the
// same [Decode], which is strict for whatever struct it is given.
//
// The static part (node, limits, tls, services) takes effect at start; the
// dynamic part (peers, tokens) is re-read by the [Reloader] and swapped in as
// a new [core.Directory].
package config
