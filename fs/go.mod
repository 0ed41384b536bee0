module github.com/alkdev/alknet/fs

go 1.26
