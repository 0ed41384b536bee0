package vault

// wipe overwrites b with zeros. It is a best effort: it clears this backing
// array only, not copies the runtime or the caller may have made.
func wipe(b []byte) {
	clear(b)
}
