// Package servebench measures the `alknet serve` binary
// ([MeasureServe]): start-to-ready time and idle resident memory.
package servebench
