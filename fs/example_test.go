package fs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/alkdev/alknet/fs"
)

// Example adds a file to a store and reads part of it back.
func Example() {
	dir, err := os.MkdirTemp("", "fs-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := fs.Open(filepath.Join(dir, "fs"), fs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	file := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(file, []byte("hello world"), 0o644); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	root, err := store.Add(ctx, file, fs.AddOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Pin(ctx, "hello", root); err != nil {
		log.Fatal(err)
	}
	fmt.Println(root)
	if _, err := store.ReadRange(ctx, root, fs.Range{Offset: 6, Length: 5}, os.Stdout); err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	// Output:
	// bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e
	// world
}
