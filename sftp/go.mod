module github.com/alkdev/alknet/sftp

go 1.26
