module github.com/alkdev/alknet/msg

go 1.26.0

require (
	filippo.io/edwards25519 v1.2.0
	github.com/alkdev/alknet/call v0.0.0
	github.com/alkdev/alknet/core v0.0.0
	go.etcd.io/bbolt v1.4.3
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
)

require (
	github.com/google/jsonschema-go v0.4.3 // indirect
	github.com/quic-go/quic-go v0.65.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace (
	github.com/alkdev/alknet/call => ../call
	github.com/alkdev/alknet/core => ../core
)

// quic-go with the slow-start patch in third_party/quic-go/ALKNET-PATCHES.md.
replace github.com/quic-go/quic-go => ../third_party/quic-go
