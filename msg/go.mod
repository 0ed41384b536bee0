module github.com/alkdev/alknet/msg

go 1.26
