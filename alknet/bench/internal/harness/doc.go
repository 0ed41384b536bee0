// Package harness is what the benchmark scenarios share: statistics
// over interleaved rounds and their ratios ([Summarize], [PairedRatio]),
// goal lines ([WriteGoal]), core endpoints on the loopback
// ([StartEndpoint]), child processes ([StartChild], [RunChild],
// [TimeCommand]), the alknet binary ([BuildAlknet], [FindRepoRoot]) and
// facts about the machine ([ReadMachine], [ProbeOffloads]).
package harness
