// Package hostile attacks an `alknet serve` node anonymously with each
// [AttackShape] ([MeasureHostile]) and reports its memory and how a known
// peer's pings fare meanwhile.
package hostile
