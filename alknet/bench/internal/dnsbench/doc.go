// Package dnsbench measures alknet's DNS service ([CompareDNS]): UDP
// queries against CoreDNS, DoQ against DoT.
package dnsbench
