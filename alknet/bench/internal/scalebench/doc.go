// Package scalebench measures what grows with the work on a real `alknet
// serve` (issue 18): memory per idle connection over QUIC and TCP+TLS
// ([MeasureConns]), a head's routed-call latency and memory with many
// attached workers ([MeasureWorkers]), and `fs ls`, `fs gc` and `git
// ls-remote` times against the number of fs blocks and git refs
// ([MeasureStore]).
package scalebench
