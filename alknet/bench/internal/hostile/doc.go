// Package hostile attacks an `alknet serve` node with each [AttackShape]
// ([MeasureHostile]), anonymously or as a known writer, and reports its
// memory and how another known peer's pings fare meanwhile.
package hostile
