module github.com/alkdev/alknet/call

go 1.26
