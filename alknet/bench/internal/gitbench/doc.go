// Package gitbench measures alknet's git service ([CompareGit]): clone,
// shallow clone, fetch and push against git daemon, wall time and peak
// memory, on generated repositories ([GenerateGitRepo]).
package gitbench
