module github.com/alkdev/alknet/git

go 1.26
