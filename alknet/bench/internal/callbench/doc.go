// Package callbench measures calls ([CompareCalls],
// [CompareSubscriptions], [CompareH2Load]): request/response latency and
// throughput of alknet/call against gRPC, NATS request-reply and HTTP
// APIs, direct and routed through a head to a worker, and subscription
// event rates.
package callbench
