// Package sshbench measures alknet's SSH service ([CompareSSH]): tunnel
// throughput (iperf3), SOCKS5 latency, SFTP get/put and session set-up
// against OpenSSH's sshd.
package sshbench
