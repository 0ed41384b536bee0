module github.com/alkdev/alknet/ssh

go 1.26
