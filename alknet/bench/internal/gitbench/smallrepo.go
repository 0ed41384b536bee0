package gitbench

// SmallGitRepo is a repository generated in well under a second.
var SmallGitRepo = GitRepoSpec{Commits: 30, Files: 10, FileLines: 64, EditLines: 40, Seed: 7}
