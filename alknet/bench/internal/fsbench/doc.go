// Package fsbench measures alknet/fs ([CompareFS]): add against dd, get
// against raw alknet/perf.
package fsbench
