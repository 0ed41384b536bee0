module github.com/alkdev/alknet/http

go 1.26
