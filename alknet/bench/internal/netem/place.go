package netem

// Place is where a rig of child processes runs: its servers listen on
// host (127.0.0.1 when empty) and are started behind the server prefix,
// its clients behind the client prefix (both empty on the loopback;
// `ip netns exec NAMESPACE` across an emulated link). NodeConfig is
// appended to the node's alknet.toml.
type Place struct {
	host           string
	server, client []string
	NodeConfig     string
}

// LinkPlace runs the servers in l's namespace B, on its address, and the
// clients in namespace A.
func LinkPlace(l *Link) Place {
	return Place{
		host:   l.Addr(SideB).String(),
		server: []string{"ip", "netns", "exec", l.Namespace(SideB)},
		client: []string{"ip", "netns", "exec", l.Namespace(SideA)},
	}
}

// Addr is the servers' address.
func (p Place) Addr() string {
	if p.host == "" {
		return "127.0.0.1"
	}
	return p.host
}

// wrap returns the command line of name args behind prefix.
func wrap(prefix []string, name string, args ...string) (string, []string) {
	if len(prefix) == 0 {
		return name, args
	}
	return prefix[0], append(append(prefix[1:len(prefix):len(prefix)], name), args...)
}

// ServerCmd and clientCmd return a server's and a client's command line.
func (p Place) ServerCmd(name string, args ...string) (string, []string) {
	return wrap(p.server, name, args...)
}

func (p Place) ClientCmd(name string, args ...string) (string, []string) {
	return wrap(p.client, name, args...)
}
