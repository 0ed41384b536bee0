module github.com/alkdev/alknet/vault

go 1.26.0

require (
	github.com/cosmos/go-bip39 v1.0.0
	golang.org/x/crypto v0.59.0
	golang.org/x/text v0.44.0
)

require golang.org/x/sys v0.50.0 // indirect
