module github.com/alkdev/alknet/dns

go 1.26
